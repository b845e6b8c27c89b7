"""The threaded edition: the book's server on its own thread pool, made robust.

The **acceptor** (:mod:`threaded.acceptor`) accepts, reads what came and
hands each connection with bytes to the pool; between requests it parks
keep-alive connections (:mod:`threaded.parking`) under their deadlines, and
sends on what a slow reader could not take at once (:mod:`threaded.writing`).
A **worker** (:mod:`threaded.pool`, woken as :mod:`threaded.wake` explains)
runs :meth:`ThreadedServer.handle_connection`: read, feed the sans-I/O core,
answer every complete request (sleeping for ``/sleep``, holding the worker
as in the book; :mod:`threaded.answering`, shared with ``--spawn``), then
hand the connection back, or close it. So an idle or slow client costs a
descriptor, never a worker; only ``/sleep`` holds one. On Linux a free
worker watches the parked connections itself (:meth:`ThreadedServer.watch`,
leader/followers), and the acceptor relays none of their requests.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from functools import partial
from types import TracebackType

from common.connection import Exchange, HttpConnection
from common.runtime.cli import Options
from common.runtime.listener import shown_host
from common.runtime.logs import url
from common.runtime.signals import stop_signals_blocked
from common.runtime.tcp import DONTWAIT, RECV_SIZE, readable
from threaded.acceptor import Acceptor
from threaded.answering import Answering
from threaded.client import Client, ServerStats
from threaded.listener import open_listener
from threaded.parking import DEFAULT_PARKING, LeaderParking, ParkingKind
from threaded.pool import PoolCreationError, PoolShutDownError
from threaded.wake import WakeOnDemandPool
from threaded.writing import Afterwards, send_rest_here

logger = logging.getLogger(__name__)


class ThreadedServer(Answering):
    """A listening socket, a thread pool and the acceptor that joins them.

    All its state is its own (no globals). It binds and starts its workers
    at once (``OSError``, :class:`~threaded.pool.PoolCreationError`);
    :meth:`serve_forever` runs until :meth:`request_stop`, then shuts down
    gracefully. ``parking`` chooses where keep-alive connections wait.
    """

    def __init__(
        self,
        options: Options,
        sock: socket.socket | None = None,
        *,
        parking: ParkingKind = DEFAULT_PARKING,
    ) -> None:
        super().__init__(options)
        # Every open client (the acceptor adds, whoever closes discards;
        # set.add and set.discard are atomic under the GIL).
        self._clients: set[Client] = set()

        self.host = shown_host(options.host, sock)
        listener = open_listener(options, sock)
        self.port: int = listener.getsockname()[1]
        self._acceptor = Acceptor(self, listener, parking)
        try:
            with stop_signals_blocked():  # the workers inherit the mask
                self.pool = WakeOnDemandPool.build(options.workers, options.queue_size)
        except PoolCreationError:
            self._acceptor.close()
            raise
        self.pool.when_stuck(self._acceptor.parking.interrupt)
        parked = self._acceptor.parking
        self._watched = parked if isinstance(parked, LeaderParking) else None
        """The parking a worker watches (leader/followers), if it is one."""

    # -- public -------------------------------------------------------------

    @property
    def url(self) -> str:
        return url(self.options.host, self.port)

    @property
    def listening_socket(self) -> socket.socket:
        return self._acceptor.listener

    @property
    def wakeup_socket(self) -> socket.socket:
        """A byte written to it wakes the acceptor (a signal's, for one)."""
        return self._acceptor.wake_w

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def stats(self) -> ServerStats:
        """What the server holds right now (a snapshot: other threads move on)."""
        clients = list(self._clients)  # one C-level copy: safe while others change it
        parked = sum(1 for client in clients if client.parked)
        return ServerStats(
            open=len(clients),
            parked=parked,
            busy=len(clients) - parked,
            tracked=self._acceptor.tracked,
            watched=self._acceptor.parking.watched,
            writing=len(self._acceptor.writers),
        )

    def request_stop(self) -> None:
        """Begin a graceful shutdown. Safe from any thread and from a signal
        handler: it takes no lock, it sets a flag and wakes the acceptor."""
        self.stop_requested = True
        self._acceptor.wake()

    def serve_forever(self) -> None:
        """Run the acceptor until a stop is requested, then shut down: stop
        accepting, close idle connections, let every request already received
        finish (with ``Connection: close``) within ``--shutdown-timeout``."""
        try:
            self._pass_the_watch()
            self._acceptor.run()
        finally:
            self._shut_down()

    def close(self) -> None:
        """Release a server whose loop never ran (or leave a ``with`` block)."""
        self.pool.shutdown()
        self._acceptor.close()

    def __enter__(self) -> ThreadedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the acceptor asks of the server -----------------------------------

    def new_client(self, sock: socket.socket, address: tuple[str, int]) -> Client:
        client = Client(
            sock, address, HttpConnection(self._router, self.limits, self._cache)
        )
        self._clients.add(client)
        return client

    def dispatch(self, client: Client) -> None:
        """Queue a connection that has bytes to read, or 503 if all are busy.

        The book's ``pool.execute(|| handle_connection(stream))``: a job made
        for this dispatch, kept by no one after it ran, so a closed
        connection is freed at once (no reference cycle for the collector).
        """
        if not self.pool.try_execute(partial(self.handle_connection, client)):
            self.reject(client, self._busy)

    def reject(self, client: Client, exchange: Exchange) -> None:
        """Answer ``exchange`` (503, 408) without waiting on the client, and close."""
        self._say_once(client.sock, client.name(), exchange)
        self.close_connection(client, linger=True)  # a slow head may still come

    def time_out(self, client: Client) -> None:
        """Its deadline for the rest of a request passed: 408 if a head had
        begun, else (an answered request's body, or empty lines) no response;
        then close."""
        timeout = client.http.time_out()
        if timeout is None:
            self.close_connection(client, linger=True)
        else:
            self.reject(client, timeout)

    def close_connection(self, client: Client, *, linger: bool = False) -> None:
        """Close a connection; never raises. ``linger``: the client may still
        be sending, so close in stages (:mod:`threaded.lingering`)."""
        self._clients.discard(client)
        self._acceptor.parking.forget(client)
        if linger:
            self._acceptor.closes.linger(client.sock)
            return
        with contextlib.suppress(OSError):
            client.sock.close()

    # -- the workers' side: the book's handle_connection ---------------------------

    def handle_connection(self, client: Client) -> None:
        """The book's ``handle_connection``, run by a pool worker for a
        connection with bytes to read: read them, feed the core, answer every
        complete request (``time.sleep`` for ``/sleep``), then hand the
        connection back to the acceptor to wait for more, or close it.
        Stopping, what its client sent before the stop is answered here first
        (a stopping server parks nothing)."""
        afterwards = self._read_and_answer(client)
        while (
            afterwards is Afterwards.PARK
            and self.stop_requested
            and not client.unsent
            and readable(client.sock)
        ):
            afterwards = self._read_and_answer(client)
        if afterwards is None:  # already handed back or closed
            return
        if not client.unsent:
            self.finish(client, afterwards)
        elif not self._acceptor.writers.hand_over(client, afterwards):
            self.write_in_worker(client, afterwards, queue=False)  # stopping

    def _read_and_answer(self, client: Client) -> Afterwards | None:
        """One read and its answers; what to do next (None: done with it)."""
        try:
            data = client.first
            if data is None:
                data = client.sock.recv(RECV_SIZE, DONTWAIT)
            else:
                client.first = None
        except BlockingIOError:  # a spurious wake-up: nothing to read after all
            self._hand_back(client)
            return None
        except OSError:  # reset by the client
            self.close_connection(client)
            return None
        try:
            return self._answer(client, data)
        except OSError as error:  # reset or broken pipe: the client left
            logger.debug("Dropped %s: %s", client.name(), error)
        except Exception:
            logger.exception("Unexpected error serving %s", client.name())
        client.unsent = b""
        return Afterwards.CLOSE

    def finish(self, client: Client, afterwards: Afterwards) -> None:
        """Hand a connection back to be parked, or close it."""
        if afterwards is Afterwards.PARK:
            self._hand_back(client)
        else:
            self.close_connection(client, linger=afterwards is Afterwards.LINGER)

    def write_in_worker(
        self, client: Client, afterwards: Afterwards, *, queue: bool = True
    ) -> None:
        """The plain way to send the rest of an answer: block in a worker
        (this one, or with ``queue`` a job's) while the client takes it; the
        shutdown's way, once the acceptor sends nothing more."""
        if queue:
            job = partial(self.write_in_worker, client, afterwards, queue=False)
            if not self.pool.try_execute(job):
                self.close_connection(client)
            return
        with self.pool.blocking():
            sent = send_rest_here(client, self.options.write_timeout)
        if sent:
            self.finish(client, afterwards)
        else:
            self.close_connection(client)

    def watch(self) -> None:
        """Leader/followers: the job of the one worker that watches the parked
        connections. It waits for one's next bytes, passes the watch on (to
        the next free worker: usually itself, once done) and serves them: one
        thread woken per request, where the acceptor would relay it to a
        second. It gives way to a job no other worker is free for."""
        assert self._watched is not None  # the watch is queued for no other
        with self.pool.blocking():  # so that queued jobs wake other workers
            client = self._watched.wait()
        self._pass_the_watch()
        if client is not None:
            self.handle_connection(client)

    def _pass_the_watch(self) -> None:
        if self._watched is not None and not self.stop_requested:
            with contextlib.suppress(PoolShutDownError):
                self.pool.execute_always(self.watch)  # the only one: never refused

    def _blocking(self) -> contextlib.AbstractContextManager[None]:
        return self.pool.blocking()  # the pool wakes another worker meanwhile

    def _hand_back(self, client: Client) -> None:
        """Return a connection to be parked, or close it if stopping."""
        if not self._acceptor.parking.hand_back(client):
            self.close_connection(client, linger=True)

    # -- shutdown -------------------------------------------------------------

    def _shut_down(self) -> None:
        """Stop accepting, close parked connections, finish in-flight requests."""
        logger.info("Shutting down.")
        self.stop_requested = True
        self._acceptor.stop()
        grace = self.options.shutdown_timeout
        if not self.pool.shutdown(timeout=grace):
            logger.warning(
                "Requests still running after %.1f s; exiting anyway.", grace
            )
        for client in list(self._clients):
            self.close_connection(client)
        self._acceptor.closes.finish()  # the clients read our last answers first
        self._acceptor.close_wake()
