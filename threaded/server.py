"""The threaded edition: the book's server on its own thread pool, made robust.

Threads and their jobs:

* The **acceptor** (the thread that calls :meth:`ThreadedServer.serve_forever`,
  normally the main thread) owns a ``selectors`` selector holding the
  listening socket, a wake-up socket pair and every *parked* connection
  (idle between requests, or part-way through a request head). It accepts
  (the listener defers that until a request's first bytes are in, on Linux),
  reads what came and hands the new connection straight to the pool; it
  enforces the idle and header deadlines with the select timeout, and hands
  a parked connection to the pool when it has bytes to read.
* A **worker** runs one job per readable connection: read what is there, feed
  the sans-I/O :class:`~common.connection.HttpConnection`, answer every
  complete request (``time.sleep`` for ``/sleep`` — holding the worker, as in
  the book), then hand the connection back to the acceptor, or close it.

On Linux the parked connections wait in an epoll set of their own, nested in
the selector, each armed with ``EPOLLONESHOT``: its next bytes fire once and
disarm it, so the acceptor hands it to a worker without unregistering it, and
the worker re-arms it itself when it is done — one ``epoll_ctl``, where the
portable way (elsewhere) costs a wake-up of the acceptor, a register and an
unregister per request. With keep-alive that took the server's CPU per
request from 55-60 to 37-46 us (+25 to 45 % req/s). The acceptor learns of a
re-armed connection when it next wakes, to give it its idle deadline.

So an idle or slow client costs a file descriptor, not a worker (the way
gunicorn's gthread worker parks keep-alive connections), while ``/sleep``
still costs a worker, which is the point of the book's demo.

No call on a client socket waits: each passes ``MSG_DONTWAIT`` (cheaper than
switching the socket to non-blocking mode, one system call per connection
saved), a read that finds nothing hands the connection back to be parked, and
a response goes out in one ``send`` that completes at once unless the client
stops reading; only then does a worker wait, bounded by ``--write-timeout``
and marked with :meth:`~threaded.pool.ThreadPool.blocking`. The common path
is one ``recv`` and one ``send`` a request, with no per-request threads,
timers or log records (unless the access log is on). The pool wakes workers
on demand (see :mod:`threaded.pool`), so under load one or two workers do the
work while the others sleep, instead of five threads trading the interpreter
lock on every system call.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import select
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from types import FrameType, TracebackType
from typing import Any

from common.budget import RequestBudget
from common.connection import Exchange, ExchangeCache, HttpConnection
from common.errors import RequestTimeout, ServiceUnavailable
from common.response import Responder
from common.routes import Pages, Router
from common.runtime.cli import Options
from common.runtime.listener import defer_accept, listen
from common.runtime.logs import AccessLog, listening_message, url
from common.runtime.resources import raise_open_file_limit
from common.runtime.signals import STOP_SIGNALS, StopPolicy
from common.runtime.signals import name as signal_name
from threaded.pool import PoolCreationError
from threaded.wake import WakeOnDemandPool

logger = logging.getLogger(__name__)

RECV_SIZE = 65536
"""Bytes read per ``recv``: several pipelined requests, or a whole head."""
ACCEPT_BATCH = 64
"""Connections accepted per readiness event, so accepting cannot starve the rest."""
SWEEP_FLOOR = 0.01
"""One-shot parking: the acceptor wakes at most this often just to note
hand-backs, however short the timeouts (see ``_accept_loop``)."""
ACCEPT_PAUSE = 0.5
"""Seconds to stop accepting after EMFILE and friends, instead of spinning."""
_DONTWAIT = socket.MSG_DONTWAIT
_LAST_WORD = _DONTWAIT | getattr(socket, "MSG_MORE", 0)
"""Flags for the last send before a close (Linux): ``MSG_MORE`` holds the bytes
back for the close, which sends them with its FIN in one segment instead of
two. One packet fewer per ``Connection: close`` response: ~5 us less kernel
time for the server per request, and less for the client (+10 % req/s)."""
_SHUTDOWN_SIGNALS = frozenset(STOP_SIGNALS)
_ONESHOT = hasattr(select, "epoll")
"""Park connections in an ``EPOLLONESHOT`` set that workers re-arm (Linux)."""
_ONESHOT_READ = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Client:
    """One accepted connection: its socket, its protocol state, its deadline.

    Only one thread touches a client at a time: the acceptor while it is
    parked, the worker running its job otherwise; the hand-over goes through
    the pool's channel one way and the locked hand-back (list, and on Linux
    the re-arming) the other, and both give the next owner a consistent view.
    """

    __slots__ = (
        "address",
        "first",
        "http",
        "parked",
        "request_started",
        "sock",
        "watched",
    )

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        http: HttpConnection,
    ) -> None:
        self.sock = sock
        self.address = address
        self.http = http
        self.request_started: float | None = None
        """``time.monotonic()`` when a still-incomplete request began, else None."""
        self.first: bytes | None = None
        """What the acceptor read before handing the new connection over."""
        self.parked = False
        """Waiting for its next bytes: set by whoever parks it, cleared by the
        acceptor when it hands the connection to a worker."""
        self.watched = False
        """Registered in the server's one-shot epoll set (Linux)."""

    def name(self) -> str:
        host, port = self.address[0], self.address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Listener(socket.socket):
    """A listening socket whose ``accept()`` costs less Python.

    ``socket.accept()`` builds each new socket from ``self.family`` and
    ``self.type``: properties that turn the C integers into enum members in
    Python on every call, about 1.3 us of the acceptor's 7 us of Python per
    connection (timeit). They cannot change, so this class looks them up
    once; ``accept()`` itself is the stdlib's.
    """

    def __init__(self, sock: socket.socket) -> None:
        family, kind, proto = sock.family, sock.type, sock.proto
        super().__init__(family, kind, proto, sock.fileno())
        sock.detach()  # only now: if that failed, ``sock`` still owns the fd
        self.setblocking(False)
        self._family = family
        self._kind = kind

    @classmethod
    def adopt(cls, sock: socket.socket) -> _Listener:
        """Take over a listening socket, set up for serving; closes it on failure.

        Non-blocking; ``TCP_NODELAY``, which accepted sockets inherit (Linux,
        the BSDs), so it costs no call per connection; deferred accept (see
        :func:`~common.runtime.listener.defer_accept`: the acceptor reads each request
        as it accepts, and hands the connection straight to a worker).
        """
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            defer_accept(sock)
            return cls(sock)
        except OSError:
            sock.close()
            raise

    @property
    def family(self) -> socket.AddressFamily:
        return self._family

    @property
    def type(self) -> socket.SocketKind:
        return self._kind


@dataclass(frozen=True)
class ServerStats:
    """The threaded server's connections, counted (see ``ThreadedServer.stats``)."""

    open: int
    """Accepted and not yet closed."""
    parked: int
    """Waiting for their next bytes, costing no worker."""
    busy: int
    """With a worker (or on their way to or from one)."""
    tracked: int
    """Parked under an idle or head deadline the acceptor keeps."""
    watched: int
    """Registered in the one-shot epoll set (Linux)."""


class ThreadedServer:
    """A listening socket, a thread pool and the acceptor loop that joins them.

    Holds all of its own state (no module globals), so tests can run several
    in one process. ``ThreadedServer(options)`` binds at once (raising
    ``OSError`` if it cannot) and starts the workers (raising
    :class:`~threaded.pool.PoolCreationError`); :meth:`serve_forever` runs
    until :meth:`request_stop` (a signal, or ``--max-requests``) and then
    shuts down gracefully. A server whose loop never runs is released with
    :meth:`close` (or a ``with`` block).
    """

    def __init__(
        self,
        options: Options,
        sock: socket.socket | None = None,
        *,
        oneshot: bool = _ONESHOT,
    ) -> None:
        self.options = options
        self._limits = options.limits()
        self._router = Router(Pages.load(), options.sleep_seconds)
        # Repeated request heads parse once (a dict look-up), for all workers.
        self._cache = ExchangeCache(self._router, self._limits)
        # One responder for all workers. Its caches are dicts whose single
        # operations are atomic under the GIL; the worst a race can do is
        # serve a Date one second old, which HTTP tolerates.
        self._responder = Responder()
        self._access = AccessLog(options.access_log)
        self._log_access = options.access_log
        self._budget = RequestBudget(options.max_requests)
        self._busy = Exchange.failure(ServiceUnavailable())

        if sock is None:
            sock = listen(options.host, options.port)
        # else already listening: inherited from the --processes supervisor
        self._listener = _Listener.adopt(sock)
        self.port: int = self._listener.getsockname()[1]
        self._open_watching(oneshot)
        try:
            # On-demand waking: see threaded.pool. Our jobs mark their waits.
            with _shutdown_signals_blocked():  # workers inherit the mask
                self._pool = WakeOnDemandPool.build(options.workers, options.queue_size)
        except PoolCreationError:
            self._close_sockets()
            raise

        # Every open client (acceptor adds, whoever closes discards; set.add
        # and set.discard are atomic under the GIL): --max-connections.
        self._clients: set[_Client] = set()
        # Parked clients and their deadlines, owned by the acceptor. Idle ones
        # share one timeout, so insertion order is deadline order and expiry
        # only looks at the front; partial heads keep their own deadline.
        self._idle: dict[_Client, float] = {}
        self._partial: dict[_Client, float] = {}
        self._next_idle_check = math.inf
        self._next_partial_check = math.inf
        self._accept_resume = math.inf
        self._accept_failing = False  # EMFILE and friends: logged once a spell

        # The hand-back: workers append here and wake the acceptor. The lock
        # also makes "stopping" and "hand back" exclusive, so no connection
        # is parked after the acceptor has closed the parked ones.
        self._lock = threading.Lock()
        self._returned: list[_Client] = []
        self._wake_pending = False
        self._stopping = False  # set by the acceptor under _lock
        self._stop_requested = False  # set by anyone, read by anyone
        self._stop_policy = StopPolicy(self._stop_gracefully, self._exit_at_once)

    def _open_watching(self, oneshot: bool) -> None:
        """The wake-up socket pair and the selector (closes the listener on failure).

        Linux: parked connections wait in an epoll set of their own, nested
        in the selector, armed with EPOLLONESHOT (see :meth:`_hand_back`).
        """
        self._oneshot: select.epoll | None = None
        self._by_fd: dict[int, _Client] = {}
        try:
            self._wake_r, self._wake_w = socket.socketpair()
        except OSError:
            self._listener.close()
            raise
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            if oneshot:
                self._oneshot = select.epoll()
                self._selector.register(self._oneshot.fileno(), selectors.EVENT_READ)
        except OSError:
            self._close_sockets()
            raise

    # -- public -------------------------------------------------------------

    @property
    def url(self) -> str:
        return url(self.options.host, self.port)

    def stats(self) -> ServerStats:
        """What the server holds right now (a snapshot: other threads move on)."""
        clients = list(self._clients)  # one C-level copy: safe while others change it
        parked = sum(1 for client in clients if client.parked)
        return ServerStats(
            open=len(clients),
            parked=parked,
            busy=len(clients) - parked,
            tracked=len(self._idle) + len(self._partial),
            watched=len(self._by_fd),
        )

    def request_stop(self) -> None:
        """Begin a graceful shutdown. Safe from any thread and from a signal handler.

        It takes no lock (a signal handler may interrupt the acceptor while
        it holds one); it sets a flag and wakes the acceptor.
        """
        self._stop_requested = True
        self._wake()

    def serve_forever(self) -> None:
        """Run the acceptor loop until a stop is requested, then shut down.

        Shutdown: stop accepting, close idle connections, let every request
        already received finish (answered with ``Connection: close``) within
        ``--shutdown-timeout``, join the workers.
        """
        try:
            self._accept_loop()
        finally:
            self._shut_down()

    def close(self) -> None:
        """Release the workers and sockets of a server whose loop never ran."""
        self._pool.shutdown()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()
        if self._oneshot is not None:
            self._oneshot.close()

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the acceptor -----------------------------------------------------------

    def _accept_loop(self) -> None:
        selector = self._selector
        listener = self._listener
        oneshot = self._oneshot
        oneshot_fd = -1 if oneshot is None else oneshot.fileno()
        # Hand-backs do not wake the acceptor in one-shot mode (_hand_back):
        # it notes them after every wake-up, and wakes at least this often
        # while there are clients, so that no idle deadline goes unnoticed.
        timeouts = min(self.options.keep_alive_timeout, self.options.header_timeout)
        sweep = max(SWEEP_FLOOR, timeouts / 4)
        now = time.monotonic()
        while not self._stop_requested:
            deadline = min(
                self._next_idle_check, self._next_partial_check, self._accept_resume
            )
            timeout = None if deadline == math.inf else max(0.0, deadline - now)
            # Queued jobs and sleeping workers: make sure the queue moves.
            recheck = self._pool.nudge()
            if recheck is not None and (timeout is None or recheck < timeout):
                timeout = recheck
            if oneshot is not None and self._clients:
                timeout = sweep if timeout is None else min(timeout, sweep)
            events = selector.select(timeout)
            now = time.monotonic()
            if oneshot is not None and self._returned:
                self._take_back(now)
            for key, _ in events:
                client = key.data
                if client is not None:
                    self._dispatch(client)
                elif key.fileobj is listener:
                    self._accept(now)
                elif key.fd == oneshot_fd:
                    self._dispatch_ready()
                else:
                    self._drain_wake()
                    self._take_back(now)
            if now >= deadline:
                self._expire(now)

    def _accept(self, now: float) -> None:
        """Accept what is waiting (a bounded batch); refuse beyond the limit."""
        listener = self._listener
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = listener.accept()
            except BlockingIOError:  # all taken: descriptors were to spare
                self._accept_failing = False
                return
            except OSError as error:
                # The book unwraps here (A4): one EMFILE ended the server.
                if error.errno not in _RESOURCE_ERRORS:  # e.g. ECONNABORTED
                    logger.warning("accept() failed: %s", error)
                    continue
                # The backlog stays readable: pause rather than spin on it.
                # Logged once a spell, not every pause: a spell ends when the
                # backlog is emptied (a lone success proves no headroom, since
                # accept() on a full descriptor table fails even when empty).
                report = logger.debug if self._accept_failing else logger.error
                report("accept() failed: %s; pausing %.1f s", error, ACCEPT_PAUSE)
                self._accept_failing = True
                self._selector.unregister(listener)
                self._accept_resume = now + ACCEPT_PAUSE
                return
            if len(self._clients) >= self.options.max_connections:
                self._refuse(sock)
                continue
            http = HttpConnection(self._router, self._limits, self._cache)
            client = _Client(sock, address, http)
            self._clients.add(client)
            # Its request is usually here already (a client writes as soon as
            # it is connected): read it and go straight to a worker, saving
            # the selector's register, wake-up and unregister. Park it only
            # if nothing has come yet.
            try:
                client.first = sock.recv(RECV_SIZE, _DONTWAIT)
            except BlockingIOError:
                self._park(client, now)
                continue
            except OSError:  # reset already
                self._close(client)
                continue
            self._to_worker(client)

    def _refuse(self, sock: socket.socket) -> None:
        """503 to a connection beyond ``--max-connections``; best effort, no wait."""
        _send_once(sock, self._busy.render(self._responder))
        sock.close()

    def _park(self, client: _Client, now: float) -> None:
        """Watch a connection for its next bytes, under the right deadline."""
        if self._oneshot is None:
            self._selector.register(client.sock, selectors.EVENT_READ, client)
            client.parked = True
        elif not self._arm(client):
            self._close(client)
            return
        self._track(client, now)

    def _arm(self, client: _Client) -> bool:
        """Park a connection in the one-shot set: its next bytes fire once, and
        disarm it until it is armed again. Any thread that owns it.

        Marked parked first: the acceptor may take its bytes the moment it is
        armed. False if the set has no room (ENOSPC, ENOMEM): close it then.
        """
        assert self._oneshot is not None
        client.parked = True
        fd = client.sock.fileno()
        try:
            if client.watched:
                self._oneshot.modify(fd, _ONESHOT_READ)
            else:
                self._by_fd[fd] = client
                self._oneshot.register(fd, _ONESHOT_READ)
                client.watched = True
        except OSError:
            client.parked = False
            if not client.watched:
                del self._by_fd[fd]
            return False
        return True

    def _track(self, client: _Client, now: float) -> None:
        """Give a parked connection its deadline (acceptor only)."""
        started = client.request_started
        if started is None:
            deadline = now + self.options.keep_alive_timeout
            self._idle[client] = deadline
            self._next_idle_check = min(self._next_idle_check, deadline)
        else:
            deadline = started + self.options.header_timeout
            self._partial[client] = deadline
            self._next_partial_check = min(self._next_partial_check, deadline)

    def _unpark(self, client: _Client) -> None:
        client.parked = False
        if self._oneshot is None:
            self._selector.unregister(client.sock)
        # else disarmed already by its event, or about to be closed
        if self._idle.pop(client, None) is None:
            self._partial.pop(client, None)

    def _dispatch(self, client: _Client) -> None:
        """Bytes arrived on a parked connection: off to a worker."""
        self._unpark(client)
        self._to_worker(client)

    def _dispatch_ready(self) -> None:
        """The one-shot set has events: each is a parked connection with bytes."""
        for client in self._ready_parked():
            self._dispatch(client)

    def _ready_parked(self) -> list[_Client]:
        """The parked connections whose bytes have come, from the one-shot set."""
        assert self._oneshot is not None
        by_fd = self._by_fd
        ready = (by_fd.get(fd) for fd, _ in self._oneshot.poll(0))
        return [client for client in ready if client is not None and client.parked]

    def _to_worker(self, client: _Client) -> None:
        """Queue a connection that has bytes to read, or 503 if all are busy.

        The book's ``pool.execute(|| handle_connection(stream))``: a job made
        for this dispatch, kept by no one after it ran, so a closed
        connection is freed at once (no reference cycle for the collector).
        """
        if not self._pool.try_execute(partial(self.handle_connection, client)):
            self._reject(client, self._busy)

    def _drain_wake(self) -> None:
        # One read is enough: workers send one byte per wake-up (see
        # _hand_back), and any byte left over only causes one more wake-up.
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)

    def _take_back(self, now: float) -> None:
        """Park (or, one-shot, just track) the connections workers handed back."""
        with self._lock:
            returned, self._returned = self._returned, []
            self._wake_pending = False
        if self._oneshot is None:
            for client in returned:
                self._park(client, now)
            return
        for client in returned:
            # A worker armed it already; its bytes may even have come and
            # gone to a worker again since (then it is not parked now, or it
            # is parked anew and appears again further on).
            if client.parked:
                self._track(client, now)

    def _expire(self, now: float) -> None:
        """Close idle connections past their deadline; 408 to stalled heads."""
        idle = self._idle
        # One shared timeout: the expired ones are all at the front.
        while idle:
            client, deadline = next(iter(idle.items()))
            if deadline > now:
                self._next_idle_check = deadline
                break
            self._unpark(client)
            self._close(client)
        else:
            self._next_idle_check = math.inf

        if now >= self._next_partial_check:
            expired = [c for c, d in self._partial.items() if d <= now]
            for client in expired:
                self._unpark(client)
                self._reject(client, client.http.fail(RequestTimeout()))
            self._next_partial_check = min(self._partial.values(), default=math.inf)

        if now >= self._accept_resume:
            self._accept_resume = math.inf
            self._selector.register(self._listener, selectors.EVENT_READ)

    def _reject(self, client: _Client, exchange: Exchange) -> None:
        """Answer ``exchange`` (503, 408) without waiting on the client, and close."""
        data = exchange.render(self._responder)
        started = time.perf_counter_ns()
        sent = _send_once(client.sock, data)
        if self._log_access:
            self._access.record(client.name(), exchange, sent, started)
        self._close(client)

    # -- the workers' side -----------------------------------------------------

    def handle_connection(self, client: _Client) -> None:
        """The book's ``handle_connection``, run by a pool worker for a
        connection with bytes to read: read them, feed the core, answer every
        complete request (``time.sleep`` for ``/sleep``), then hand the
        connection back to the acceptor to wait for more, or close it."""
        try:
            data = client.first
            if data is None:
                data = client.sock.recv(RECV_SIZE, _DONTWAIT)
            else:
                client.first = None
        except BlockingIOError:  # a spurious wake-up: nothing to read after all
            self._hand_back(client)
            return
        except OSError:  # reset by the client
            self._close(client)
            return
        try:
            keep_open = self._answer(client, data)
        except TimeoutError:
            logger.info(
                "Dropped %s: it read nothing for %.1f s (--write-timeout).",
                client.name(),
                self.options.write_timeout,
            )
            keep_open = False
        except OSError as error:  # reset or broken pipe: the client left
            logger.debug("Dropped %s: %s", client.name(), error)
            keep_open = False
        except Exception:
            logger.exception("Unexpected error serving %s", client.name())
            keep_open = False
        if keep_open:
            self._hand_back(client)
        else:
            self._close(client, drain=self._may_have_more(client, data))

    def _may_have_more(self, client: _Client, data: bytes) -> bool:
        """Could unread bytes be on their way, so that closing now would reset?

        Not after the client closed, nor after it asked us to close once
        everything it sent was a whole request (RFC 9112 §9.6: it sends no
        more); the read that proves it costs a system call per connection.
        Shutting down, a client may have pipelined more.
        """
        if not data:
            return False
        return (
            self._stop_requested or len(data) == RECV_SIZE or not client.http.consumed
        )

    def _answer(self, client: _Client, data: bytes) -> bool:
        """Answer every complete request in the buffer; True to keep the connection.

        Responses to pipelined requests go out together, in one ``send``,
        except that those ready before a ``/sleep`` are sent before sleeping.
        """
        http = client.http
        http.receive(data)
        exchanges: list[Exchange] = []
        while (exchange := http.next_exchange()) is not None:
            exchanges.append(exchange)
        if exchanges:
            started = time.perf_counter_ns() if self._log_access else 0
            last = len(exchanges) - 1
            pending: list[tuple[Exchange, bytes]] = []
            for index, exchange in enumerate(exchanges):
                delay = exchange.reply.delay
                if delay > 0:
                    if pending:
                        self._send(client, pending, started, last_word=False)
                        pending = []
                    logger.debug(
                        "%s sleeps %.1f s for %s.",
                        threading.current_thread().name,
                        delay,
                        client.name(),
                    )
                    with self._pool.blocking():
                        time.sleep(delay)  # the book's /sleep: this worker is busy
                if self._budget.spend():
                    self.request_stop()
                # Shutting down: the last answer says Connection: close.
                closing = index == last and self._stop_requested
                response = exchange.render(self._responder, closing=closing)
                pending.append((exchange, response))
            last_word = http.closed or self._stop_requested  # we close next
            self._send(client, pending, started, last_word=last_word)
            if last_word:
                return False
        if not data:  # the client closed its side
            return False
        client.request_started = (
            (client.request_started or time.monotonic()) if http.mid_request else None
        )
        return True

    def _send(
        self,
        client: _Client,
        answered: list[tuple[Exchange, bytes]],
        started: int,
        *,
        last_word: bool,
    ) -> None:
        """Send responses in one go; only a client that stops reading makes us wait.

        ``last_word``: the connection closes right after, so the bytes may
        wait for the close and leave with its FIN (:data:`_LAST_WORD`).
        """
        if len(answered) == 1:
            data = answered[0][1]
        else:
            data = b"".join(response for _, response in answered)
        sock = client.sock
        try:
            sent = sock.send(data, _LAST_WORD if last_word else _DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            # The rest, blocking, but for --write-timeout at most in total.
            sock.settimeout(self.options.write_timeout)
            try:
                with self._pool.blocking():
                    sock.sendall(memoryview(data)[sent:])
            finally:
                sock.settimeout(None)
        if self._log_access:
            name = client.name()
            for exchange, response in answered:
                self._access.record(name, exchange, len(response), started)

    def _hand_back(self, client: _Client) -> None:
        """Return a connection to the acceptor, or close it if stopping.

        One-shot (Linux): the worker arms the connection itself and the
        acceptor learns of it when it next wakes (to give it its deadline),
        so a keep-alive request costs the acceptor no wake-up, no register
        and no unregister: one ``epoll_ctl`` here instead. Elsewhere the
        acceptor is woken to register it in its selector.
        """
        wake = failed = False
        with self._lock:
            stopping = self._stopping
            if not stopping:
                if self._oneshot is not None:
                    failed = not self._arm(client)
                    if not failed:
                        self._returned.append(client)
                else:
                    self._returned.append(client)
                    wake = not self._wake_pending
                    self._wake_pending = True
        if stopping or failed:
            self._close(client, drain=True)
        elif wake:
            self._wake()

    def _wake(self) -> None:
        # Full means a wake-up is already pending; closed means we are done.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _close(self, client: _Client, *, drain: bool = False) -> None:
        """Close a connection; never raises.

        ``drain`` first reads what the client sent and we did not, so that the
        close is a FIN, not a reset that could destroy the last response
        before the client reads it (book-spec, "Headers and body ignored").
        """
        self._clients.discard(client)
        sock = client.sock
        if client.watched:  # before the close: its number may be reused after
            self._by_fd.pop(sock.fileno(), None)
        try:
            if drain:
                _discard_input(sock)
            sock.close()
        except OSError:
            pass

    # -- shutdown -------------------------------------------------------------

    def _shut_down(self) -> None:
        """Stop accepting, close parked connections, finish in-flight requests."""
        logger.info("Shutting down.")
        self._stop_requested = True
        with self._lock:
            self._stopping = True  # from here on, workers close, not hand back
        selector = self._selector
        now = time.monotonic()
        self._take_back(now)
        self._accept_backlog(now)
        self._listener.close()  # new connections are refused from here on
        # A parked connection whose request has already arrived is answered
        # (with Connection: close): its client sent it before we stopped.
        ready = {key.data for key, _ in selector.select(0) if key.data is not None}
        if self._oneshot is not None:
            ready.update(self._ready_parked())
        for client in [*self._idle, *self._partial]:
            if client in ready:
                self._dispatch(client)
            else:
                self._close(client, drain=True)
        self._idle.clear()
        self._partial.clear()
        selector.close()
        if self._oneshot is not None:
            self._oneshot.close()  # workers arm nothing once we are stopping
        grace = self.options.shutdown_timeout
        if not self._pool.shutdown(timeout=grace):
            logger.warning(
                "Requests still running after %.1f s; exiting anyway.", grace
            )
        for client in list(self._clients):
            self._close(client)
        self._wake_r.close()
        self._wake_w.close()

    def _accept_backlog(self, now: float) -> None:
        """Take in the connections queued on the listener (a bounded number).

        Closing the listener would reset them, yet their clients may have
        sent a whole request already; accepted, they are served like the rest.
        """
        listener = self._listener
        for _ in range(1 + self.options.max_connections // ACCEPT_BATCH):
            events = self._selector.select(0)
            if not any(key.fileobj is listener for key, _ in events):
                return
            self._accept(now)

    @contextlib.contextmanager
    def signals_handled(self) -> Iterator[None]:
        """SIGINT/SIGTERM stop this server while the block runs (main thread only).

        Python runs a handler in the main thread, between two bytecodes. A
        signal that arrives as the acceptor is about to sleep in select()
        (or one taken by another thread) sets the flag for it, but interrupts
        no system call: the acceptor slept on, and the handler with it (seen
        once in CI, the server never logging ``Shutting down.``). So the
        signal also writes a byte to the wake socket, the wake-up fd, and
        select() returns for it: the handler then runs. The wake-up fd is a
        duplicate of the wake socket's, closed only once it is no longer the
        wake-up fd: the shutdown closes the server's own before this block ends.
        """
        wakeup = os.dup(self._wake_w.fileno())  # non-blocking, like the original
        previous_fd: int | None = None
        handlers: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        try:
            # Raises ValueError outside the main thread, like signal.signal.
            previous_fd = signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
            for signum in sorted(_SHUTDOWN_SIGNALS):
                handlers[signum] = signal.signal(signum, self._on_signal)
            yield
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
            if previous_fd is not None:
                signal.set_wakeup_fd(previous_fd)
            os.close(wakeup)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_policy(signum)

    def _stop_gracefully(self, signum: int) -> None:
        self.request_stop()

    @staticmethod
    def _exit_at_once(signum: int) -> None:
        # Not logging: the interrupted code may be inside the logging module.
        os.write(2, f"{signal_name(signum)} again: exiting at once.\n".encode())
        os._exit(128 + signum)


@contextlib.contextmanager
def _shutdown_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread, and so in threads started meanwhile.

    The kernel hands a signal sent to the process to any thread that does not
    block it. Python runs handlers only in the main thread, and only when
    that thread runs: a SIGTERM taken by a worker left the acceptor asleep in
    select() and the server running (seen in the test suite, and reproduced
    with tgkill). With the workers blocking both, only the acceptor's thread
    can take them.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _send_once(sock: socket.socket, data: bytes) -> int:
    """Drop unread input, then one ``send`` that never waits, before a close.

    For the 503s and 408s: what the client's buffer cannot take at once is
    lost to it, not a thread to us. Returns the bytes sent (0 on an error).
    """
    try:
        _discard_input(sock)
        return sock.send(data, _LAST_WORD)
    except OSError:
        return 0


def _discard_input(sock: socket.socket) -> None:
    """Read and drop what is already buffered (a few reads at most, never waiting)."""
    try:
        for _ in range(4):
            if not sock.recv(RECV_SIZE, _DONTWAIT):
                return
    except OSError:  # BlockingIOError: nothing more; or reset
        pass


def serve(options: Options, sock: socket.socket | None = None) -> int:
    """Run the threaded server until a signal or ``--max-requests``; the exit status.

    A bind or thread failure is one line on stderr and status 1, never a
    traceback (the book unwraps both, A3 and F6).
    """
    raise_open_file_limit()  # each connection is a descriptor
    try:
        server = ThreadedServer(options, sock)
    except OSError as error:
        where = url(options.host, options.port)
        print(f"error: cannot listen on {where}: {error}", file=sys.stderr)
        return 1
    except PoolCreationError as error:
        print(f"error: cannot start the workers: {error}", file=sys.stderr)
        return 1
    details = f"{options.workers} workers"
    on_main = threading.current_thread() is threading.main_thread()
    # Elsewhere signals are the embedding program's business.
    with server.signals_handled() if on_main else contextlib.nullcontext():
        # Only now: once this line is out, a SIGTERM must find the handlers.
        logger.info("%s", listening_message(options, server.port, details))
        server.serve_forever()
    return 0
