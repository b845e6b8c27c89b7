"""The acceptor: the thread that accepts, parks and times out connections.

It owns a ``selectors`` selector holding the listening socket, a wake-up
socket pair and the parked connections (see :mod:`threaded.parking`). It
accepts (the listener defers that until a request's first bytes are in, on
Linux), reads what came and hands the new connection straight to the pool;
it enforces the idle and header deadlines with the select timeout, and hands
a parked connection to the pool when it has bytes to read (unless a worker
watches them: the leader parking).
"""

from __future__ import annotations

import logging
import math
import selectors
import time
from typing import TYPE_CHECKING

from common.runtime.tcp import DONTWAIT, RECV_SIZE, readable
from common.runtime.wakeup import WakeUpPair
from threaded.client import Client
from threaded.lingering import LingeringCloses
from threaded.listener import ACCEPT_PAUSE, RESOURCE_ERRORS, Listener
from threaded.parking import ParkingKind, SelectorParking, parking_for
from threaded.writing import Afterwards, Writers

if TYPE_CHECKING:
    from threaded.server import ThreadedServer

logger = logging.getLogger("threaded.server")

Deadlines = dict[Client, tuple[float, int]]
"""Parked clients: the deadline of each one's stay, and which stay it is."""

ACCEPT_BATCH = 64
"""Connections accepted per readiness event, so accepting cannot starve the rest."""
SWEEP_FLOOR = 0.01
"""One-shot parking: the acceptor wakes at most this often just to note
hand-backs, however short the timeouts (see :meth:`Acceptor.run`)."""


class Acceptor:
    """Accepting, parking and deadlines, for one :class:`ThreadedServer`."""

    def __init__(
        self, server: ThreadedServer, listener: Listener, parking: ParkingKind
    ) -> None:
        """Closes ``listener`` if it fails."""
        self._server = server
        self.listener = listener
        options = server.options
        self._keep_alive = options.keep_alive_timeout
        self._header_timeout = options.header_timeout
        self._max_connections = options.connection_limit()
        try:
            self._wake = WakeUpPair()
        except OSError:
            listener.close()
            raise
        self.wake_w = self._wake.writer
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake.reader, selectors.EVENT_READ)
        try:
            self.parking: SelectorParking = parking_for(
                self._selector, self.wake, parking
            )
        except OSError:
            listener.close()
            self._wake.close()
            self._selector.close()
            raise
        self.writers = Writers(
            self._selector,
            self.wake,
            options.write_timeout,
            self._written,
            server.close_connection,
        )
        # Parked clients, their deadlines and the stay (``parks``) each is
        # for: a worker may claim and re-park one unseen, and the old
        # deadline must not close it. Idle ones share one timeout, so
        # insertion order is deadline order and expiry only looks at the
        # front; partial heads keep their own deadline.
        self._idle: Deadlines = {}
        self._partial: Deadlines = {}
        self._next_idle_check = math.inf
        self._next_partial_check = math.inf
        self._accept_resume = math.inf
        self._accept_failing = False  # EMFILE and friends: logged once a spell
        limits = server.limits
        self.closes = LingeringCloses(
            self._selector, self.wake, limits.linger_timeout, limits.linger_bytes
        )

    @property
    def tracked(self) -> int:
        """Parked connections under an idle or head deadline."""
        return len(self._idle) + len(self._partial)

    def wake(self) -> None:
        """Wake the acceptor from select() (any thread, a signal handler too)."""
        self._wake.ring()

    def close(self) -> None:
        """Release the sockets and the selector (a server that never ran)."""
        self.listener.close()
        self._wake.close()
        self.parking.release()
        self._selector.close()

    # -- the loop -----------------------------------------------------------------

    def run(self) -> None:
        """Accept, dispatch and time out until the server asks to stop."""
        server = self._server
        selector = self._selector
        listener = self.listener
        parking = self.parking
        # Hand-backs that do not wake the acceptor (one-shot) are noted after
        # every wake-up; it wakes at least this often while there are
        # clients, so that no idle deadline goes unnoticed.
        sweep = max(SWEEP_FLOOR, min(self._keep_alive, self._header_timeout) / 4)
        now = time.monotonic()
        while not server.stop_requested:
            deadline = min(
                self._next_idle_check,
                self._next_partial_check,
                self._accept_resume,
                self.closes.next_check,
                self.writers.next_check,
            )
            timeout = None if deadline == math.inf else max(0.0, deadline - now)
            # Queued jobs and sleeping workers: make sure the queue moves.
            recheck = server.pool.nudge()
            if recheck is not None and (timeout is None or recheck < timeout):
                timeout = recheck
            if not parking.wakes_acceptor and server.open_connections:
                timeout = sweep if timeout is None else min(timeout, sweep)
            events = selector.select(timeout)
            now = time.monotonic()
            if not parking.wakes_acceptor and parking.has_returns:
                self._take_back(now)
            for key, _ in events:
                if key.fileobj is listener:
                    self._accept(now)
                elif key.fileobj is self._wake.reader:
                    self._wake.clear()
                    self._take_back(now)
                    self.closes.take(now)
                    self.writers.take(now)
                elif self.closes.owns(key.data):
                    self.closes.drop_input(key.data)
                elif self.writers.owns(key.data):
                    self.writers.write(key.data, now)
            for client in parking.ready(events):
                self._dispatch(client)
            if now >= deadline:
                self._expire(now)

    def _accept(self, now: float) -> None:
        """Accept what is waiting (a bounded batch); refuse beyond the limit."""
        server = self._server
        listener = self.listener
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = listener.accept()
            except BlockingIOError:  # all taken: descriptors were to spare
                self._accept_failing = False
                return
            except OSError as error:
                # The book unwraps here (A4): one EMFILE ended the server.
                if error.errno not in RESOURCE_ERRORS:  # e.g. ECONNABORTED
                    logger.warning("accept() failed: %s", error)
                    continue
                # The backlog stays readable: pause rather than spin on it.
                # Logged once a spell (a spell ends when the backlog is
                # emptied: accept() on a full descriptor table fails even then).
                report = logger.debug if self._accept_failing else logger.error
                report("accept() failed: %s; pausing %.1f s", error, ACCEPT_PAUSE)
                self._accept_failing = True
                self._selector.unregister(listener)
                self._accept_resume = now + ACCEPT_PAUSE
                return
            if server.open_connections >= self._max_connections and not self._shed(now):
                server.refuse(sock, address)
                continue
            client = server.new_client(sock, address)
            # Its request is usually here already (a client writes as soon as
            # it is connected): read it and go straight to a worker, saving
            # the selector's register, wake-up and unregister. Park it only
            # if nothing has come yet.
            try:
                client.first = sock.recv(RECV_SIZE, DONTWAIT)
            except BlockingIOError:
                self._park(client, now)
                continue
            except OSError:  # reset already
                server.close_connection(client)
                continue
            server.dispatch(client)

    def _shed(self, now: float) -> bool:
        """At the connection limit, make room for a newcomer by closing the
        connection cheapest to lose: the longest-parked idle one (silently),
        else the longest-parked incomplete request (408 if a head had begun).
        False if there is none: every connection is busy, and the newcomer
        gets 503. So clients that hold connections open doing nothing cannot
        lock users out."""
        self._take_back(now)  # the latest hand-backs
        idle, partial = self._idle, self._partial
        while idle:
            if self._claim(client := next(iter(idle)), idle):
                self._server.close_connection(client)
                return True
        while partial:
            if self._claim(client := next(iter(partial)), partial):
                self._server.time_out(client)
                return True
        return False

    # -- parking and deadlines ------------------------------------------------------

    def _park(self, client: Client, now: float) -> None:
        """Watch a connection for its next bytes, under the right deadline."""
        if self.parking.park(client):
            self._track(client, now)
        else:
            self._server.close_connection(client)

    def _take_back(self, now: float) -> None:
        """Note what workers did with parked connections: those they claimed
        lose their deadline, those they handed back get a new one."""
        for client in self.parking.take_claimed():
            self._forget(client)
        for client in self.parking.take_back():
            self._track(client, now)

    def _track(self, client: Client, now: float) -> None:
        """Give a parked connection its deadline (for this stay)."""
        self._forget(client)  # a deadline of an earlier stay, never claimed
        started = client.request_started
        if started is None:
            deadline = now + self._keep_alive
            self._idle[client] = (deadline, client.parks)
            self._next_idle_check = min(self._next_idle_check, deadline)
        else:
            deadline = started + self._header_timeout
            self._partial[client] = (deadline, client.parks)
            self._next_partial_check = min(self._next_partial_check, deadline)

    def _forget(self, client: Client) -> None:
        if self._idle.pop(client, None) is None:
            self._partial.pop(client, None)

    def _claim(self, client: Client, deadlines: Deadlines) -> bool:
        """Take ``client`` off ``deadlines`` and out of the parking, to close
        it. False if a worker has it now, or if its next request came while no
        worker watched (then it is served instead)."""
        _, stay = deadlines.pop(client)
        if not self.parking.claim(client, stay):
            return False
        if readable(client.sock):
            self._server.dispatch(client)
            return False
        return True

    def _written(self, client: Client, afterwards: Afterwards, now: float) -> None:
        """A connection's answers are all sent: park it, or close it."""
        if afterwards is Afterwards.PARK:
            self._park(client, now)  # here and now, not through a hand-back
        else:
            self._server.finish(client, afterwards)

    def _dispatch(self, client: Client) -> None:
        """Bytes arrived on a parked connection it watches: off to a worker."""
        self.parking.unpark(client)
        self._forget(client)
        self._server.dispatch(client)

    def _expire(self, now: float) -> None:
        """Close idle connections past their deadline; 408 to stalled heads."""
        server = self._server
        idle = self._idle
        # One shared timeout: the expired ones are all at the front.
        while idle:
            client, (deadline, _) = next(iter(idle.items()))
            if deadline > now:
                self._next_idle_check = deadline
                break
            if self._claim(client, idle):
                server.close_connection(client)
        else:
            self._next_idle_check = math.inf

        partial = self._partial
        if now >= self._next_partial_check:
            for client in [c for c, (d, _) in partial.items() if d <= now]:
                if self._claim(client, partial):
                    server.time_out(client)
            self._next_partial_check = min(
                (deadline for deadline, _ in partial.values()), default=math.inf
            )

        self.writers.expire(now)

        if now >= self._accept_resume:
            self._accept_resume = math.inf
            self._selector.register(self.listener, selectors.EVENT_READ)

        self.closes.expire(now)

    # -- shutdown -------------------------------------------------------------------

    def stop(self) -> None:
        """Stop accepting; answer parked connections whose request has come, and
        close the others. From here on workers close, not hand back."""
        server = self._server
        parking = self.parking
        parking.close()
        for client, afterwards in self.writers.stop():
            server.write_in_worker(client, afterwards)  # with the rest, if room
        now = time.monotonic()
        self._take_back(now)
        self._accept_backlog(now)
        self.listener.close()  # new connections are refused from here on
        # A parked connection whose request has already arrived is answered
        # (with Connection: close): its client sent it before we stopped.
        # (The claim serves those; a connection a worker has, it closes.)
        for deadlines in (self._idle, self._partial):
            for client in list(deadlines):
                if self._claim(client, deadlines):
                    server.close_connection(client, linger=True)
        self._selector.close()
        parking.release()

    def _accept_backlog(self, now: float) -> None:
        """Take in the connections queued on the listener (a bounded number).

        Closing the listener would reset them, yet their clients may have
        sent a whole request already; accepted, they are served like the rest.
        """
        listener = self.listener
        for _ in range(1 + self._max_connections // ACCEPT_BATCH):
            events = self._selector.select(0)
            if not any(key.fileobj is listener for key, _ in events):
                return
            self._accept(now)

    def close_wake(self) -> None:
        self._wake.close()
