"""The connections an asyncio server has open: what it counts and waits for.

``Server.wait_closed()`` returns at once on 3.11 and waits for every
connection from 3.12.1 on, so the server tracks its connections itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from asyncio_server.deadline import Deadline
from common.connection import HttpConnection
from common.runtime.listener import DEFER_ACCEPT_SECONDS
from common.runtime.logs import DROPPED_FOR_WRITE_TIMEOUT, client_name
from common.runtime.tcp import in_flight, readable

log = logging.getLogger("hello.asyncio")

READ_SIZE = 65536
"""The most one read takes from a connection (bytes)."""
FIRST_BYTES_GRACE = float(DEFER_ACCEPT_SECONDS)
"""How long after it was accepted a connection that has sent nothing may
still send its request once the server is stopping (seconds): its bytes may
be on their way. The listener accepts at once (see
:meth:`~asyncio_server.server.AsyncioServer.start`); this is the time the
threaded edition's deferred accept would have held it for."""


@dataclass(eq=False, slots=True)
class Client:
    """One live connection, as the server sees it."""

    writer: asyncio.StreamWriter
    transport: asyncio.WriteTransport
    """The writer's, kept: ``writer.transport`` is a property, asked per reply."""
    deadline: Deadline
    name: str
    admitted: bool
    """Counted against --max-connections (refused ones are not)."""
    new_until: float
    """Until then (the loop's clock) it is new and has sent nothing: see
    :data:`FIRST_BYTES_GRACE`. 0 once its first bytes have come."""
    waiting: bool = False
    """Waiting for a request (or the rest of its head): shutdown may close
    it, and so may a newcomer at the connection limit."""
    partial: bool = False
    """Waiting for the rest of a head, not for a new request."""
    sleeping: bool = False
    """Waiting out a reply's delay (``/sleep``)."""

    def started(self) -> int:
        """The start of an exchange for the access log (0: not logging, no clock)."""
        return time.perf_counter_ns() if self.name != "-" else 0

    def stop_waiting_at(self, now: float) -> float:
        """When a stopping server stops waiting for this connection's next
        request: never while bytes it sent wait unread (a request received),
        else ``now``, or for a new one that has sent nothing, at the end of
        its grace."""
        if self.has_input():
            return math.inf
        return max(now, self.new_until)

    def has_more(self, conn: HttpConnection) -> bool:
        """Has the client sent more than the requests handed out so far —
        bytes the core holds, or bytes not yet read? A stopping server
        answers those too (they were received before it began to stop)."""
        return not conn.consumed or self.has_input()

    def has_input(self) -> bool:
        """Has the client sent bytes the loop has not yet read?"""
        sock = self.writer.get_extra_info("socket")
        return sock is not None and readable(sock)

    async def sleep(
        self,
        delay: float,
        reader: asyncio.StreamReader,
        conn: HttpConnection,
        watch_bytes: int,
    ) -> bool:
        """``await asyncio.sleep(delay)``, the book's ``/sleep`` — cut short if
        the client closes or resets meanwhile; True if it did.

        Watching means reading: what the client pipelines meanwhile goes to
        ``conn``, up to ``watch_bytes``; past that the sleep is plain.
        """
        sleeper = asyncio.ensure_future(asyncio.sleep(delay))
        watcher: asyncio.Future[bytes] | None = None
        taken = 0
        self.sleeping = True
        try:
            while taken < watch_bytes:
                watcher = asyncio.ensure_future(reader.read(READ_SIZE))
                await asyncio.wait(
                    (sleeper, watcher), return_when=asyncio.FIRST_COMPLETED
                )
                if not watcher.done():
                    return False  # slept the whole delay
                try:
                    data = watcher.result()
                except OSError:
                    return True  # reset
                if not data:
                    return True  # closed
                conn.receive(data)
                taken += len(data)
            await sleeper
            return False
        finally:
            self.sleeping = False
            sleeper.cancel()
            if watcher is not None and not watcher.done():
                watcher.cancel()
                # Let it unwind: the stream allows one waiting read at a time.
                await asyncio.wait((watcher,))

    async def linger(
        self, reader: asyncio.StreamReader, seconds: float, max_bytes: int
    ) -> None:
        """Close in stages (RFC 9112 §9.6): our FIN first, then read and drop
        what the client still sends, for a bounded time and size. Closing with
        its bytes unread would send a reset, which can destroy our last
        response before the client has read it."""
        writer = self.writer
        if writer.is_closing() or not writer.can_write_eof():
            return
        writer.write_eof()
        until = self.deadline.after(seconds)
        left = max_bytes
        with contextlib.suppress(TimeoutError, OSError):
            while left > 0:
                chunk = await self.deadline.wait(reader.read(READ_SIZE), until)
                if not chunk:
                    return  # the client closed too: a clean close
                left -= len(chunk)

    async def catch_up(self, write_timeout: float) -> bool:
        """Flow control: wait while the client is behind on our replies, so
        that one that does not read cannot make us buffer them without bound
        (and reading waits until this returns). False, and the connection
        dropped, if it took none of them for ``write_timeout``."""
        if await self._while_taking(self.writer.drain, write_timeout):
            return True
        peer = client_name(self.writer.get_extra_info("peername"))
        log.info(DROPPED_FOR_WRITE_TIMEOUT, peer, write_timeout)
        self.transport.abort()
        return False

    async def _while_taking(
        self, wait: Callable[[], Awaitable[None]], write_timeout: float
    ) -> bool:
        """``await wait()`` while our write backlog shrinks; False once it
        has not for ``write_timeout`` (no progress: not a total, so a client
        reading slowly but steadily is served to the end, as nginx's
        ``send_timeout``)."""
        transport = self.transport
        if not transport.get_write_buffer_size():
            return True
        sock = self.writer.get_extra_info("socket")
        backlog = transport.get_write_buffer_size() + in_flight(sock)
        while True:
            try:
                await self.deadline.wait(wait(), self.deadline.after(write_timeout))
                return True
            except TimeoutError:
                # The kernel's unacknowledged bytes count: they shrink as the
                # client reads, long before the socket has room for ours.
                left = transport.get_write_buffer_size() + in_flight(sock)
                if left >= backlog:
                    return False
                backlog = left

    async def close(self, write_timeout: float) -> None:
        """Flush and close; a client that will not take the flush is aborted."""
        writer = self.writer
        writer.close()  # once what is buffered has gone
        try:
            # All sent, the usual case: no wait, and no coroutine made for one.
            left = self.transport.get_write_buffer_size()
            if left and not await self._while_taking(writer.wait_closed, write_timeout):
                writer.transport.abort()
        except OSError:
            pass  # it went away by itself
        except asyncio.CancelledError:
            writer.transport.abort()  # the loop is closing: the handler ends
        finally:
            self.deadline.cancel()


class Connections:
    """The set of live connections, the --max-connections count, and a way to
    wait until the set is empty."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._clients: set[Client] = set()
        # Those waiting for a request, or the rest of its head, in the order
        # they began to (dicts: a set has none): whom a newcomer may displace.
        self._idle: dict[Client, None] = {}
        self._partial: dict[Client, None] = {}
        self._lingering: dict[Client, None] = {}  # answered, closing in stages
        self._admitted = 0
        self._emptied: asyncio.Future[None] | None = None

    def admit(self, writer: asyncio.StreamWriter, name: str) -> Client:
        """Track a new connection; not admitted when it is one too many (503)."""
        admitted = self._admitted < self._limit or self._shed()
        self._admitted += admitted
        loop = self._loop
        new_until = loop.time() + FIRST_BYTES_GRACE
        deadline = Deadline(loop)
        client = Client(writer, writer.transport, deadline, name, admitted, new_until)
        self._clients.add(client)
        return client

    def waiting(self, client: Client, *, partial: bool) -> None:
        """``client`` waits for a request (``partial``: for the rest of one)."""
        client.waiting, client.partial = True, partial
        if client.admitted:
            (self._partial if partial else self._idle)[client] = None

    def lingering(self, client: Client) -> None:
        """``client`` has had its last answer and is closing in stages: the
        first to go when a newcomer needs its room."""
        if client.admitted:
            self._lingering[client] = None

    def done_waiting(self, client: Client) -> None:
        client.waiting = False
        (self._partial if client.partial else self._idle).pop(client, None)

    def _shed(self) -> bool:
        """At the limit, make room for a newcomer by ending the connection
        cheapest to lose: the oldest one lingering after its last answer,
        else the oldest idle one (closed silently), else the oldest
        incomplete request (408 if a head had begun). False if there is none:
        every connection is busy, and the newcomer gets 503. So clients that
        hold connections open doing nothing cannot lock users out."""
        queue = self._lingering or self._idle or self._partial
        if not queue:
            return False
        victim = next(iter(queue))  # the longest waiting
        self._lingering.pop(victim, None)
        self.done_waiting(victim)  # not chosen twice
        victim.deadline.expire()  # its wait ends as if its deadline had passed
        return True

    def forget(self, client: Client) -> None:
        self._clients.discard(client)
        self._lingering.pop(client, None)
        self.done_waiting(client)
        self._admitted -= client.admitted
        if not self._clients and self._emptied and not self._emptied.done():
            self._emptied.set_result(None)

    def __iter__(self) -> Iterator[Client]:
        return iter(list(self._clients))  # a copy: closing one changes the set

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def sleeping(self) -> int:
        return sum(1 for client in self._clients if client.sleeping)

    @property
    def write_backlog(self) -> int:
        """The largest unsent reply backlog of any one connection (bytes)."""
        return max(
            (c.transport.get_write_buffer_size() for c in self._clients),
            default=0,
        )

    def sockets(self) -> list[socket.socket]:
        """Their sockets (uvloop's are look-alikes)."""
        found = (c.writer.get_extra_info("socket") for c in self._clients)
        return [sock for sock in found if sock is not None]

    def abort_all(self) -> None:
        for client in list(self._clients):
            client.transport.abort()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no connection is left; False if ``timeout`` passed first."""
        if not self._clients:
            return True
        self._emptied = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._emptied
        except TimeoutError:
            return False
        return True
