"""What idle keep-alive connections cost a server in memory (``--peers``).

A keep-alive client that has had its answer and says nothing more — a browser
tab left open — costs the threaded edition a parked socket and the asyncio
edition a protocol object, not a worker or a task. This measures what that
costs: open N connections, one ``GET /`` on each, keep them all open, and
compare the server's RSS before and with them.
"""

from __future__ import annotations

import asyncio
import contextlib

from bench.client import (
    Endpoint,
    HttpError,
    close_quietly,
    open_connection,
    read_response,
    request_bytes,
)
from bench.peer_servers import rss_mib
from common.runtime.resources import raise_open_file_limit

IDLE_CONNECTIONS = 1000
BATCH = 100
"""Connections opened at once: fast, without overflowing a listen backlog."""
TIMEOUT = 30.0
"""Seconds the whole measurement may take before it is abandoned."""


async def idle_growth(
    endpoint: Endpoint, pid: int, count: int = IDLE_CONNECTIONS
) -> float | None:
    """MiB the server's RSS grows by while ``count`` idle connections are held.

    None when /proc cannot be read or a connection is not answered with 200
    (the figure would not mean what it says).
    """
    raise_open_file_limit()  # this process holds ``count`` sockets too
    before = rss_mib(pid)
    writers: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(writers) < count:
                size = min(BATCH, count - len(writers))
                opened = await asyncio.gather(
                    *(_one_request(endpoint) for _ in range(size)),
                    return_exceptions=True,
                )
                writers += [w for w in opened if isinstance(w, asyncio.StreamWriter)]
                if any(not isinstance(w, asyncio.StreamWriter) for w in opened):
                    return None
        after = rss_mib(pid)
    except TimeoutError:
        return None
    finally:
        for writer in writers:
            with contextlib.suppress(OSError):
                await close_quietly(writer)
    if before is None or after is None:
        return None
    return after - before


async def _one_request(endpoint: Endpoint) -> asyncio.StreamWriter:
    """A connection that has had one 200 and is left open (keep-alive)."""
    reader, writer = await open_connection(endpoint)
    try:
        writer.write(request_bytes(endpoint, "/", close=False))
        await writer.drain()
        response = await read_response(reader)
        if response.status != 200 or response.closes:
            raise HttpError(f"status {response.status}, closes={response.closes}")
    except BaseException:
        await close_quietly(writer)
        raise
    return writer
