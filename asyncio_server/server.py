"""The asyncio edition: the common core on ``asyncio.start_server``.

The book notes that an async runtime solves the pool's problem another way:
one ``async def handle_connection(reader, writer)`` per connection, reading
like the threaded edition's, with ``await`` where a worker blocks — above
all ``await asyncio.sleep(delay)`` for ``/sleep``, where a worker holds its
thread in ``time.sleep``. While one connection waits, the loop serves the
others. Deadlines live in :mod:`asyncio_server.deadline`, the loop choice in
:mod:`asyncio_server.loops`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket

from asyncio_server.backlog import accept_backlog
from asyncio_server.connections import READ_SIZE, Client, Connections
from asyncio_server.loops import AcceptErrorLog, loop_name
from common.budget import RequestBudget
from common.connection import Exchange, ExchangeCache, HttpConnection
from common.errors import ServiceUnavailable
from common.response import Responder
from common.routes import Pages, Router
from common.runtime.cli import Options
from common.runtime.listener import BACKLOG, defer_accept, shown_host
from common.runtime.logs import (
    AccessLog,
    client_name,
    listening_message,
)
from common.runtime.tcp import LastReply

log = logging.getLogger("hello.asyncio")

BATCH = 32
"""Pipelined requests answered before the loop serves other connections."""
REJECT_LINGER = 1.0
"""How long a connection refused with 503 may keep its socket (seconds)."""


class AsyncioServer:
    """A listening socket, the connections it accepted, and how it stops.

    All state lives here (no globals), so tests can run several in one
    process: ``port = await server.start()``, then ``await server.shutdown()``.
    """

    def __init__(
        self,
        options: Options,
        pages: Pages | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.options = options
        self._sock = sock
        """A socket already listening (from ``--processes``), served instead."""
        self.router = Router(pages or Pages.load(), options.sleep_seconds)
        self.limits = options.limits()
        # Repeated request heads parse once (a dict look-up), for all connections.
        self.cache = ExchangeCache(self.router, self.limits)
        self.responder = Responder()
        self.access_log = AccessLog(options.access_log)
        self.port = 0
        self.host = options.host
        self.loop_name = ""
        self.stopping = False
        self._budget = RequestBudget(options.max_requests)
        self._loop: asyncio.AbstractEventLoop  # the loop start() runs on
        self._connections: Connections  # made by start(), on that loop
        self._listener: asyncio.Server | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[int] | None = None

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed (refused ones included)."""
        return len(self._connections)

    @property
    def sleeping(self) -> int:
        """Requests waiting out a delay right now (``/sleep``)."""
        return self._connections.sleeping

    @property
    def write_backlog(self) -> int:
        """The largest unsent reply backlog of any one connection (bytes)."""
        return self._connections.write_backlog

    @property
    def listening_sockets(self) -> list[socket.socket]:
        """The sockets the server accepts on (empty once it has stopped)."""
        return [] if self._listener is None else list(self._listener.sockets)

    def connection_sockets(self) -> list[socket.socket]:
        """The sockets of the connections open now (uvloop's are look-alikes)."""
        return self._connections.sockets()

    # -- the book's handle_connection -------------------------------------------

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection: read, let the core parse, answer, until it closes."""
        name = "-"
        if self.access_log.enabled:
            name = client_name(writer.get_extra_info("peername"))
        client = self._connections.admit(writer, name)
        try:
            if not client.admitted:
                await self._refuse(client, reader)
            elif await self._converse(client, reader):
                limits = self.limits
                self._connections.lingering(client)
                await client.linger(reader, limits.linger_timeout, limits.linger_bytes)
        except OSError as error:  # a reset or a broken pipe: the client's business
            log.debug("%s: connection lost: %s", client.name, error)
        except asyncio.CancelledError:
            # The loop is closing (a second signal): drop the connection and
            # end quietly; 3.11's start_server logs a cancelled handler as an error.
            writer.transport.abort()
        finally:
            await client.close(self.options.write_timeout)
            self._connections.forget(client)

    async def _converse(self, client: Client, reader: asyncio.StreamReader) -> bool:
        """The conversation, until it must end; True if the client may still be
        sending (it then gets a lingering close).

        The book's loop: read, let the core parse, answer each request. A
        request's way through it calls no other coroutine — each call of one,
        even one that never waits, cost ~1 µs, 5 % of a keep-alive request
        (README, Performance) — so its only ``await`` is the read; a delay
        (``/sleep``) and a client that falls behind are the rare ones.
        """
        limits, write_timeout = self.limits, self.options.write_timeout
        conn = HttpConnection(self.router, limits, self.cache)
        head_by = math.inf  # a head must be complete by then, from its first byte
        while True:
            now = self._loop.time()
            partial = conn.mid_request
            if partial:
                head_by = min(head_by, now + self.options.header_timeout)
                until = head_by
            else:
                head_by = math.inf
                until = now + self.options.keep_alive_timeout
            if self.stopping:
                until = min(until, client.stop_waiting_at(now))
            self._connections.waiting(client, partial=partial)
            try:
                with client.deadline.until(until):
                    data: bytes | None = await reader.read(READ_SIZE)
            except TimeoutError:  # the deadline passed, or the shutdown began
                data = await self._last_read(client, reader, until)
            self._connections.done_waiting(client)
            client.new_until = 0.0
            if data is None:
                if conn.mid_request and not self.stopping:
                    # 408, unless all that is missing is an answered request's body.
                    if (timeout := conn.time_out()) is not None:
                        self._write(client, timeout, client.started(), counted=False)
                    return True
                return False
            conn.receive(data)  # b"": the client has finished sending
            ended = False
            answered = 0
            while not ended and (exchange := conn.next_exchange()) is not None:
                started = client.started()
                if delay := exchange.reply.delay:
                    line = exchange.request_line
                    log.debug("%s: %r sleeps %.3g s", client.name, line, delay)
                    # Where the threaded edition's worker blocks, this one awaits.
                    if await client.sleep(delay, reader, conn, limits.max_header_bytes):
                        ended = True  # the client left meanwhile: no one to answer
                        self.access_log.record(
                            client.name, exchange, 0, started, departed=True
                        )
                        break
                more = self.stopping and client.has_more(conn)
                ended = self._write(client, exchange, started, more=more)
                if client.transport.get_write_buffer_size():  # it is behind
                    ended = not await client.catch_up(write_timeout) or ended
                answered += 1
                if answered % BATCH == 0:
                    await asyncio.sleep(0)  # one pipelining client cannot hold the loop
            if not data:
                return False
            if ended or conn.closed:
                return not conn.consumed  # an error, or requests after a close

    async def _last_read(
        self, client: Client, reader: asyncio.StreamReader, until: float
    ) -> bytes | None:
        """After a wait that timed out: None, unless the server is stopping.

        A stopping server closes a connection that is waiting for a request,
        but not before taking what had already arrived: a request the client
        sent before the listener closed is answered.
        """
        if not self.stopping:
            return None
        until = min(until, client.stop_waiting_at(self._loop.time()))
        try:
            with client.deadline.until(until):
                return await reader.read(READ_SIZE)
        except TimeoutError:
            return None

    def _write(
        self,
        client: Client,
        exchange: Exchange,
        started: int,
        *,
        more: bool = False,
        counted: bool = True,
    ) -> bool:
        """Write one reply in one piece (head and body: no Nagle stall);
        True when the connection must close after it. Stopping, the reply
        says ``Connection: close`` unless the client has sent ``more``.
        ``counted``: it answers a request, and spends --max-requests (a 408
        for a head that never came does not, as in the threaded edition)."""
        writer = client.writer
        if client.transport.is_closing():
            return True
        last = counted and self._budget.spend()
        closing = last or not exchange.keep_alive or (self.stopping and not more)
        data = exchange.render(self.responder, closing=closing)
        if closing:
            ending = LastReply(client.transport.get_extra_info("socket"))
            writer.write(data)
            ending.send(written=not client.transport.get_write_buffer_size())
        else:
            writer.write(data)
        if started:
            self.access_log.record(client.name, exchange, len(data), started)
        if last:
            self.begin_shutdown()
        return closing

    async def _refuse(self, client: Client, reader: asyncio.StreamReader) -> None:
        """Over --max-connections: 503 at once, then a short lingering close
        (the client's request may be on its way: see :meth:`Client.linger`)."""
        exchange = Exchange.failure(ServiceUnavailable())
        data = exchange.render(self.responder, closing=True)
        client.writer.write(data)
        self.access_log.record(client.name, exchange, len(data), client.started())
        linger = min(REJECT_LINGER, self.options.write_timeout)
        await client.linger(reader, linger, self.limits.linger_bytes)

    # -- starting and stopping -----------------------------------------------------

    async def start(self) -> int:
        """Listen; return the real port (useful with port 0)."""
        # Kept, not asked for: get_running_loop() costs a getpid() on 3.11.
        self._loop = loop = asyncio.get_running_loop()
        self._connections = Connections(loop, self.options.connection_limit())
        self._stopped = loop.create_future()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(AcceptErrorLog())
        if self._sock is not None:  # inherited from the --processes supervisor
            self._listener = await asyncio.start_server(
                self.handle_connection, sock=self._sock, backlog=BACKLOG
            )
        else:
            self._listener = await asyncio.start_server(
                self.handle_connection,
                self.options.host,
                self.options.port,
                backlog=BACKLOG,
            )
        self.host = shown_host(self.options.host, self._sock)
        sockets = self._listener.sockets
        for sock in sockets:
            # Accept at once (even from the supervisor's deferred listener),
            # overlapping the client's send: deferring saved this edition no
            # work and cost its tail (README). See FIRST_BYTES_GRACE.
            defer_accept(sock, seconds=0)
        self.port = int(sockets[0].getsockname()[1]) if sockets else self.options.port
        self.loop_name = loop_name(loop)
        return self.port

    def announce(self) -> None:
        """Log the ``Listening on ...`` line that says the server is ready."""
        message = listening_message(self.options, self.port, self.loop_name, self.host)
        log.info("%s", message)

    def begin_shutdown(self) -> None:
        """Stop gracefully (idempotent): see :meth:`_drain`."""
        if self.stopping or self._stopped is None:
            return
        self.stopping = True
        log.info("Shutting down.")
        self._drainer = self._loop.create_task(self._drain())

    async def shutdown(self) -> int:
        """Stop gracefully and wait until stopped; the exit status."""
        self.begin_shutdown()
        return await self.wait_stopped()

    async def wait_stopped(self) -> int:
        """Wait until the server has stopped; 0 after a graceful stop."""
        assert self._stopped is not None, "start() first"
        return await asyncio.shield(self._stopped)

    def abort(self, status: int) -> None:
        """Stop now: close the listener, drop every connection (second signal)."""
        if self._drainer is not None:
            self._drainer.cancel()
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
        self._connections.abort_all()
        self._finish(status)

    async def _drain(self) -> None:
        """Stop accepting, close waiting connections, let answered ones finish.

        Every request already received is answered (with ``Connection:
        close``), sleeping ones included, for up to --shutdown-timeout; then
        whatever is left is dropped.
        """
        assert self._listener is not None
        await accept_backlog(self._listener)
        self._listener.close()
        now = self._loop.time()
        for client in self._connections:
            if client.waiting:
                client.deadline.expire(at=client.stop_waiting_at(now))
        if not await self._connections.wait_empty(self.options.shutdown_timeout):
            log.warning(
                "Requests still running after %.1f s; exiting anyway.",
                self.options.shutdown_timeout,
            )
            self._connections.abort_all()
        await self.close()
        self._finish(0)

    async def close(self) -> None:
        """Close the listener and wait for it, once no connection is left.

        ``Server.wait_closed()`` returns at once on 3.11 but waits for every
        connection from 3.12.1 on, so it is awaited only when our own set
        says that they have all gone.
        """
        if self._listener is None:
            return
        self._listener.close()
        if await self._connections.wait_empty(1.0):
            await self._listener.wait_closed()

    def _finish(self, status: int) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(status)
