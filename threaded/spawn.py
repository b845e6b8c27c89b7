"""``python -m threaded --spawn``: the book's Listing 21-11, a thread per connection.

Before it builds the pool, the chapter tries the simplest cure for a slow
``/sleep``: ``thread::spawn`` for every connection. Here each accepted
connection gets a new thread that runs :meth:`SpawningServer.handle_connection`
for the connection's whole life — wait for bytes, answer, wait again, until
it closes — blocking all the way: no pool, no parking, no hand-offs. It
serves ``/sleep``s side by side, as the event loop does, and pays the price
the book warns of: a thread, with its stack and its scheduling, for every
open connection. ``--max-connections`` is the bound the book's version lacks
(it spawns until the system refuses): past it, a newcomer gets 503.

What happens to the bytes once read is the pool's server's own code
(:class:`~threaded.answering.Answering`); only who waits, and where, differ.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import math
import select
import socket
import threading
import time

from common.connection import HttpConnection
from common.runtime.cli import Options
from common.runtime.listener import shown_host
from common.runtime.logs import url
from common.runtime.signals import stop_signals_blocked
from common.runtime.tcp import RECV_SIZE
from common.runtime.wakeup import WakeUpPair
from threaded.answering import Answering
from threaded.client import Client
from threaded.listener import ACCEPT_PAUSE, RESOURCE_ERRORS, open_listener
from threaded.writing import Afterwards, send_rest_here

logger = logging.getLogger("threaded.server")

SPAWN_DETAIL = "a thread per connection"
"""The start-up line's detail: ``(threaded, a thread per connection)``."""
BACKLOG_ROUNDS = 1024
"""At shutdown, the most queued connections taken in before the listener closes."""


class _Woken(enum.Enum):
    """Why a wait for a connection's next bytes ended."""

    READABLE = enum.auto()
    STOPPING = enum.auto()
    TIMED_OUT = enum.auto()


class SpawningServer(Answering):
    """A listening socket, and a thread for each connection it accepts.

    The same interface as :class:`~threaded.server.ThreadedServer`:
    :meth:`serve_forever` until :meth:`request_stop`, then a graceful
    shutdown that joins every connection's thread.
    """

    def __init__(self, options: Options, sock: socket.socket | None = None) -> None:
        super().__init__(options)
        self.host = shown_host(options.host, sock)
        self._listener = open_listener(options, sock)  # non-blocking: we poll it
        self.port: int = self._listener.getsockname()[1]
        self._limit = options.connection_limit()
        # A byte on _wake wakes the accept loop (a signal, a stop request);
        # _stopping, written once at shutdown, tells every connection's thread.
        self._wake = WakeUpPair()
        self._stopping_r, self._stopping_w = socket.socketpair()
        self._stopping_w.setblocking(False)
        # The live connections' threads: added here, each discards itself
        # (set.add and set.discard are atomic under the GIL).
        self._threads: set[threading.Thread] = set()
        self._numbers = itertools.count(1)

    # -- public -------------------------------------------------------------

    @property
    def url(self) -> str:
        return url(self.options.host, self.port)

    @property
    def listening_socket(self) -> socket.socket:
        return self._listener

    @property
    def wakeup_socket(self) -> socket.socket:
        """A byte written to it wakes the accept loop (a signal's, for one)."""
        return self._wake.writer

    @property
    def open_connections(self) -> int:
        """Connections being served, each by a thread of its own."""
        return len(self._threads)

    def request_stop(self) -> None:
        """Begin a graceful shutdown; safe from any thread and a signal handler."""
        self.stop_requested = True
        self._wake.ring()

    def serve_forever(self) -> None:
        """The book's ``for stream in listener.incoming() { thread::spawn(..) }``,
        until a stop is requested; then shut down gracefully."""
        try:
            while not self.stop_requested:
                if self._wait_for(self._listener, self._wake.reader) is _Woken.READABLE:
                    self._accept()
                else:
                    self._wake.clear()  # a wake-up; the loop checks why
        finally:
            self._shut_down()

    def close(self) -> None:
        """Release a server whose loop never ran (or leave a ``with`` block)."""
        for sock in (self._listener, self._stopping_r, self._stopping_w):
            sock.close()
        self._wake.close()

    def __enter__(self) -> SpawningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- accepting: a thread for each connection --------------------------------

    def _accept(self) -> None:
        try:
            sock, address = self._listener.accept()
        except BlockingIOError:  # another process of --processes took it
            return
        except OSError as error:
            if error.errno not in RESOURCE_ERRORS:  # e.g. ECONNABORTED
                logger.warning("accept() failed: %s", error)
                return
            # The backlog stays readable: pause rather than spin on it.
            logger.error("accept() failed: %s; pausing %.1f s", error, ACCEPT_PAUSE)
            time.sleep(ACCEPT_PAUSE)
            return
        self._spawn(sock, address)

    def _spawn(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """``thread::spawn(|| handle_connection(stream))``, within the bound."""
        if len(self._threads) >= self._limit:
            self.refuse(sock, address)
            return
        http = HttpConnection(self._router, self.limits, self._cache)
        client = Client(sock, address, http)
        thread = threading.Thread(
            target=self._run,
            args=(client,),
            name=f"Connection-{next(self._numbers)}",
            daemon=True,  # past --shutdown-timeout, the exit does not wait for it
        )
        self._threads.add(thread)
        try:
            with stop_signals_blocked():  # signals are the main thread's
                thread.start()
        except RuntimeError as error:  # the system has no thread to give
            self._threads.discard(thread)
            logger.error("cannot start a thread for %s: %s", client.name(), error)
            self.refuse(sock, address)

    def _run(self, client: Client) -> None:
        try:
            self.handle_connection(client)
        finally:
            self._threads.discard(threading.current_thread())

    # -- one connection, on its own thread --------------------------------------

    def handle_connection(self, client: Client) -> None:
        """The closure Listing 21-11 spawns: this connection, from its first
        request to its close. Read, feed the core, answer (``time.sleep``
        for ``/sleep``), send what is left blocking, and wait for more."""
        logger.debug("%s serves %s.", threading.current_thread().name, client.name())
        afterwards = Afterwards.CLOSE
        try:
            while True:
                data = self._receive(client)
                if isinstance(data, Afterwards):
                    afterwards = data
                    break
                afterwards = self._answer(client, data)
                if client.unsent and not send_rest_here(
                    client, self.options.write_timeout
                ):
                    afterwards = Afterwards.CLOSE
                if afterwards is not Afterwards.PARK:
                    break
        except OSError as error:  # reset or broken pipe: the client left
            logger.debug("Dropped %s: %s", client.name(), error)
            afterwards = Afterwards.CLOSE
        except Exception:
            logger.exception("Unexpected error serving %s", client.name())
            afterwards = Afterwards.CLOSE
        if afterwards is Afterwards.LINGER:
            self._linger(client.sock)
        client.sock.close()

    def _receive(self, client: Client) -> bytes | Afterwards:
        """The next bytes, or how to end the connection: its deadline passed
        (408 if a head had begun), or the server stops while it is idle."""
        http = client.http
        now = time.monotonic()
        if http.mid_request:
            deadline = (client.request_started or now) + self.options.header_timeout
        else:
            deadline = now + self.options.keep_alive_timeout
        woken = self._wait_for(client.sock, self._stopping_r, deadline - now)
        if woken is _Woken.READABLE:
            return client.sock.recv(RECV_SIZE)
        if woken is _Woken.TIMED_OUT and http.mid_request:
            # 408, unless all that is missing is an answered request's body.
            if (timeout := http.time_out()) is not None:
                self._say_once(client.sock, client.name(), timeout)
            return Afterwards.LINGER
        return Afterwards.CLOSE

    @staticmethod
    def _wait_for(
        sock: socket.socket, alarm: socket.socket, timeout: float = math.inf
    ) -> _Woken:
        """Wait until ``sock`` is readable (it wins a tie), ``alarm`` is, or
        ``timeout`` seconds pass. ``poll``: descriptors past 1023 are common."""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(alarm, select.POLLIN)
        wait_ms = None if timeout == math.inf else max(0, math.ceil(timeout * 1000))
        ready = {fd for fd, _ in poller.poll(wait_ms)}
        if sock.fileno() in ready:
            return _Woken.READABLE
        return _Woken.STOPPING if ready else _Woken.TIMED_OUT

    def _linger(self, sock: socket.socket) -> None:
        """Close in stages, here in the connection's thread: our FIN first,
        then drop what the client still sends, for a bounded time and size
        (the pool's server does this in its acceptor: :mod:`threaded.lingering`)."""
        deadline = time.monotonic() + self.limits.linger_timeout
        left = self.limits.linger_bytes
        with contextlib.suppress(OSError):  # TimeoutError included: done waiting
            sock.shutdown(socket.SHUT_WR)
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                left -= len(data)

    # -- shutdown -------------------------------------------------------------

    def _shut_down(self) -> None:
        """Stop accepting, close idle connections, let every request already
        received finish (with ``Connection: close``), join every thread."""
        logger.info("Shutting down.")
        self.stop_requested = True
        self._accept_backlog()
        self._listener.close()  # new connections are refused from here on
        with contextlib.suppress(OSError):
            self._stopping_w.send(b"\0")  # idle threads close; busy ones finish
        grace = self.options.shutdown_timeout
        deadline = time.monotonic() + grace
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._threads:
            logger.warning(
                "Requests still running after %.1f s; exiting anyway.", grace
            )
            closing: tuple[socket.socket, ...] = ()
        else:  # and the stop signal too, once no thread is left to read it
            closing = (self._stopping_r, self._stopping_w)
        for sock in closing:
            sock.close()
        self._wake.close()

    def _accept_backlog(self) -> None:
        """Take in the connections queued on the listener (a bounded number):
        closing it would reset them, and their requests may have arrived
        (deferred accept hands over only connections that have sent)."""
        for _ in range(BACKLOG_ROUNDS):
            try:
                sock, address = self._listener.accept()
            except OSError:  # BlockingIOError: none left
                return
            self._spawn(sock, address)
