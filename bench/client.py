"""The load client: raw HTTP/1.1 over asyncio streams, timed in nanoseconds.

Why not aiohttp or httpx: a client library brings its own connection pool,
its own parsing and its own overheads, and we want to know exactly what is
being timed — one TCP connect (when asked for), one request written in one
``write``, one response read to its last byte. The servers send
``Content-Length`` responses; chunked and read-to-close bodies are handled
too, so that ``--target`` can point at another project's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
import urllib.parse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.stats import Sample

T = TypeVar("T")

MAX_BODY = 4 * 1024 * 1024
"""Bodies beyond this are a misconfigured target, not a hello page."""
HEAD_LIMIT = 64 * 1024


class BadTarget(ValueError):
    """A URL the bench cannot use; the message is one line for the user."""


class HttpError(Exception):
    """A response that was not HTTP/1.x as we can read it."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server listens: an ``http://HOST:PORT`` origin."""

    host: str
    port: int

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def host_header(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``http://HOST[:PORT][/]`` → Endpoint; anything else → BadTarget."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise BadTarget(f"{url!r} is not a valid URL ({error})") from None
        if parts.scheme != "http":
            raise BadTarget(f"{url!r}: only http:// URLs are supported")
        if not parts.hostname:
            raise BadTarget(f"{url!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise BadTarget(
                f"{url!r}: give the server's origin only (http://HOST:PORT); "
                "the bench chooses the paths"
            )
        if parts.username or parts.password:
            raise BadTarget(f"{url!r}: credentials in the URL are not supported")
        return cls(parts.hostname, 80 if port is None else port)


@dataclass(frozen=True, slots=True)
class Response:
    """What the client needs of a response: its status and whether it closes."""

    status: int
    closes: bool
    body_length: int


def request_bytes(endpoint: Endpoint, path: str, *, close: bool) -> bytes:
    """One GET, written in one piece (a split write meets Nagle's algorithm)."""
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {endpoint.host_header}\r\n"
        f"User-Agent: hello-bench\r\n{connection}\r\n"
    ).encode("ascii")


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one response to its last byte; raise on anything malformed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise ConnectionError(
            "server closed the connection before a full response"
            if error.partial
            else "server closed the connection without answering"
        ) from None
    except asyncio.LimitOverrunError:
        raise HttpError("response head too large") from None
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    closes = "close" in headers.get("connection", "").lower() or version == "HTTP/1.0"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        length = await _read_chunked(reader)
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise HttpError("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise HttpError(f"Content-Length {length} out of range")
        await reader.readexactly(length)
    elif status in (204, 304) or 100 <= status < 200:
        length = 0
    else:  # the body runs to the end of the connection
        length = len(await reader.read(MAX_BODY))
        closes = True
    return Response(status, closes, length)


async def _read_chunked(reader: asyncio.StreamReader) -> int:
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("bad chunk size") from None
        total += size
        if total > MAX_BODY:
            raise HttpError("chunked body too large")
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return total
        await reader.readexactly(size + 2)


def describe_error(error: BaseException) -> str:
    """A short, stable label for a failed request (grouped in the JSON)."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:120]


async def open_connection(
    endpoint: Endpoint,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, limit=HEAD_LIMIT
    )
    return reader, writer


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a connection; the server may already have gone, which is fine."""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def fetch(
    endpoint: Endpoint,
    path: str,
    origin_ns: int,
    *,
    deadline: float | None = None,
    on_sent: Callable[[], None] | None = None,
    head: bytes | None = None,
) -> Sample:
    """GET ``path`` on a fresh connection (``Connection: close``), timed.

    The clock starts before the connect: a request that waits in a server's
    backlog or accept queue waits on the user's time too. ``deadline`` is an
    event-loop time after which the request counts as a timeout; ``on_sent``
    is called once the request is handed to the socket. ``head``: the
    request to send instead of the plain one (it must ask to close).
    """
    start = time.perf_counter_ns()
    sent: int | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await open_connection(endpoint)
            writer.write(head or request_bytes(endpoint, path, close=True))
            await writer.drain()
            sent = time.perf_counter_ns()
            if on_sent is not None:
                on_sent()
            response = await read_response(reader)
        # Timed here, before the finally: closing is not part of the answer.
        return _answered(path, start, origin_ns, response, sent)
    except _FAILURES as error:
        return _failed(path, start, origin_ns, error, sent)
    finally:
        if writer is not None:
            await close_quietly(writer)


_FAILURES = (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError)


def _failed(
    path: str, start: int, origin_ns: int, error: BaseException, sent: int | None
) -> Sample:
    end = time.perf_counter_ns()
    reason = describe_error(error)
    return Sample(
        path, start - origin_ns, end - start, None, reason, _on(sent, origin_ns)
    )


def _answered(
    path: str, start: int, origin_ns: int, response: Response, sent: int | None
) -> Sample:
    end = time.perf_counter_ns()
    error = None if response.status == 200 else f"status {response.status}"
    return Sample(
        path,
        start - origin_ns,
        end - start,
        response.status,
        error,
        _on(sent, origin_ns),
    )


def _on(clock_ns: int | None, origin_ns: int) -> int | None:
    """A ``perf_counter_ns`` reading on the run's time axis."""
    return None if clock_ns is None else clock_ns - origin_ns


class KeepAliveClient:
    """One persistent connection, reopened when the server closes it.

    Used by the built-in throughput client: each ``get`` times only the
    request and its response, plus the reconnect when one was needed.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(
        self,
        path: str,
        origin_ns: int,
        *,
        deadline: float | None = None,
        head: bytes | None = None,
    ) -> Sample:
        """GET ``path`` (or send ``head``, a GET of it) on the connection."""
        start = time.perf_counter_ns()
        sent: int | None = None
        try:
            async with asyncio.timeout_at(deadline):
                if self._writer is None or self._reader is None:
                    self._reader, self._writer = await open_connection(self._endpoint)
                request = head or request_bytes(self._endpoint, path, close=False)
                self._writer.write(request)
                sent = time.perf_counter_ns()
                response = await read_response(self._reader)
        except _FAILURES as error:
            await self.close()
            return _failed(path, start, origin_ns, error, sent)
        sample = _answered(path, start, origin_ns, response, sent)
        if response.closes:
            await self.close()
        return sample

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            await close_quietly(writer)


async def probe(endpoint: Endpoint, timeout: float) -> Sample:
    """One GET / to check that a server answers (and to warm it up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    return await fetch(endpoint, "/", time.perf_counter_ns(), deadline=deadline)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop when it is installed, else the stock loop.

    ``asyncio.Runner(loop_factory=...)`` chooses the loop for this run only,
    without touching the process-wide event-loop policy.
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    try:
        import uvloop  # noqa: PLC0415 - optional, and only needed here

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


def loop_name() -> str:
    """Which event loop :func:`run` uses, for the report."""
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return "asyncio"
    return "uvloop"
