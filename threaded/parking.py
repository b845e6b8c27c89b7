"""Where a keep-alive connection waits for its next bytes, costing no worker.

Three ways, chosen when the server is made (:class:`ParkingKind`), behind
one interface, the plain one first:

* :class:`SelectorParking`, the portable one (gunicorn's gthread does the
  same): parked connections sit in the acceptor's selector, and only the
  acceptor touches it. A worker hands a connection back by queueing it and
  waking the acceptor, which registers it.
* :class:`OneShotParking` (Linux): parked connections sit in an epoll set
  of their own, nested in the selector, each armed with ``EPOLLONESHOT``: its
  next bytes fire once and disarm it. The worker re-arms a connection itself
  (one ``epoll_ctl``) instead of waking the acceptor for a register and an
  unregister per request; the acceptor notes hand-backs when it next wakes.
* :class:`LeaderParking` (Linux, the default): the same one-shot set, watched
  by a free worker instead of the acceptor (leader/followers). The worker
  that sees a connection's bytes passes the watch on and serves it itself:
  one thread wake-up per request, not the acceptor's and then a worker's.

Whoever takes a connection out of the parking (its bytes came, a deadline
passed, the server is stopping) claims it first (:meth:`SelectorParking.claim`),
so that only one does, now that it can be a worker as well as the acceptor.
"""

from __future__ import annotations

import select
import selectors
import threading
from collections.abc import Callable
from enum import StrEnum

from common.runtime.wakeup import WakeUpPair
from threaded.client import Client

ONESHOT_AVAILABLE = hasattr(select, "epoll")
_ONESHOT_READ = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)

Events = list[tuple[selectors.SelectorKey, int]]

NOTE_BATCH = 256
"""One-shot parking: hand-backs (and claims) waiting for the acceptor wake it
once they are this many. It notes them now and then anyway, but a long list
noted at once holds the interpreter lock for milliseconds (see the README)."""


class SelectorParking:
    """Parked connections in the acceptor's selector (portable)."""

    wakes_acceptor = True
    """A hand-back wakes the acceptor (so it needs no periodic sweep)."""

    def __init__(self, selector: selectors.BaseSelector, wake: Callable[[], None]):
        self._selector = selector
        self._wake = wake
        # The hand-back: workers append and wake the acceptor. The lock also
        # makes "closed" and "hand back" exclusive, so no connection is
        # parked after the acceptor has closed the parked ones.
        self._lock = threading.Lock()
        self._returned: list[Client] = []
        self._wake_pending = False
        self._closed = False

    @property
    def watched(self) -> int:
        """Connections registered with the kernel by this parking itself."""
        return 0

    @property
    def has_returns(self) -> bool:
        return bool(self._returned)  # a peek without the lock: take_back() locks

    def park(self, client: Client) -> bool:
        """Watch a connection for its next bytes (acceptor only)."""
        self._selector.register(client.sock, selectors.EVENT_READ, client)
        client.parked = True
        client.parks += 1
        return True

    def unpark(self, client: Client) -> None:
        """Stop watching it: its bytes came, or it is closing (acceptor only)."""
        client.parked = False
        self._selector.unregister(client.sock)

    def claim(self, client: Client, stay: int) -> bool:
        """Take a connection out of the parking, to close or serve it: False
        if it is no longer parked for the ``stay`` (its ``parks``) meant."""
        if not client.parked or client.parks != stay:
            return False
        self.unpark(client)
        return True

    def hand_back(self, client: Client) -> bool:
        """A worker returns a connection; False once closed (close it then)."""
        with self._lock:
            if self._closed:
                return False
            self._returned.append(client)
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            self._wake()
        return True

    def take_claimed(self) -> list[Client]:
        """Parked connections workers took since last asked (none here)."""
        return []

    def take_back(self) -> list[Client]:
        """Park what workers handed back; the connections to give deadlines."""
        returned = self._take_returned()
        return [client for client in returned if self.park(client)]

    def _take_returned(self) -> list[Client]:
        with self._lock:
            returned, self._returned = self._returned, []
            self._wake_pending = False
        return returned

    def ready(self, events: Events) -> list[Client]:
        """The parked connections whose bytes have come, among ``events``."""
        return [key.data for key, _ in events if isinstance(key.data, Client)]

    def forget(self, client: Client) -> None:
        """A connection is closing (whoever owns it)."""

    def interrupt(self) -> None:
        """No worker waits in this parking (see :class:`LeaderParking`)."""

    def close(self) -> None:
        """Take no more hand-backs: from now on workers close instead."""
        with self._lock:
            self._closed = True

    def release(self) -> None:
        """Free what the parking holds of the kernel's."""


class OneShotParking(SelectorParking):
    """Parked connections in a one-shot epoll set the workers re-arm (Linux)."""

    wakes_acceptor = False
    watched_by_acceptor = True
    """The set is nested in the acceptor's selector (else a worker watches it)."""

    def __init__(self, selector: selectors.BaseSelector, wake: Callable[[], None]):
        super().__init__(selector, wake)
        self._epoll = select.epoll()
        try:
            if self.watched_by_acceptor:
                selector.register(self._epoll.fileno(), selectors.EVENT_READ)
        except OSError:
            self._epoll.close()
            raise
        self._by_fd: dict[int, Client] = {}

    @property
    def watched(self) -> int:
        return len(self._by_fd)

    def park(self, client: Client) -> bool:
        """Arm it in the one-shot set (any thread that owns it). Marked parked
        first: the acceptor may take its bytes the moment it is armed. False
        if the set has no room (ENOSPC, ENOMEM): close it then."""
        client.parked = True
        client.parks += 1
        fd = client.sock.fileno()
        watched = self._by_fd.get(fd) is client
        try:
            if watched:
                self._epoll.modify(fd, _ONESHOT_READ)
            else:
                self._by_fd[fd] = client
                self._epoll.register(fd, _ONESHOT_READ)
        except OSError:
            client.parked = False
            if not watched:
                del self._by_fd[fd]
            return False
        return True

    def unpark(self, client: Client) -> None:
        client.parked = False  # disarmed already by its event, or closing

    def claim(self, client: Client, stay: int) -> bool:
        with self._lock:  # a worker may be parking it, or claiming it
            return super().claim(client, stay)

    def hand_back(self, client: Client) -> bool:
        """The worker arms it itself; the acceptor only gives it its deadline
        when it next wakes (no wake-up, no register, no unregister)."""
        with self._lock:
            if self._closed or not self.park(client):
                return False
            self._returned.append(client)
            full = len(self._returned) == NOTE_BATCH
        if full:
            self._wake()
        return True

    def take_back(self) -> list[Client]:
        # Armed already; its bytes may even have come and gone to a worker
        # since (then it is not parked now, or parked anew and listed again).
        return [client for client in self._take_returned() if client.parked]

    def ready(self, events: Events) -> list[Client]:
        if not any(key.fd == self._epoll.fileno() for key, _ in events):
            return []
        ready = (self._by_fd.get(fd) for fd, _ in self._epoll.poll(0))
        return [client for client in ready if client is not None and client.parked]

    def forget(self, client: Client) -> None:
        # Before the close: its number may be reused after.
        fd = client.sock.fileno()
        if self._by_fd.get(fd) is client:
            del self._by_fd[fd]

    def release(self) -> None:
        self._epoll.close()  # workers arm nothing once the parking is closed


class LeaderParking(OneShotParking):
    """The one-shot set, watched by a free worker: leader/followers (Linux).

    The worker holding the watch (the server's ``watch`` job) blocks in
    :meth:`wait`; a connection's bytes wake that worker alone, and it serves
    them after passing the watch on, so the acceptor relays nothing. The
    watch gives way (:meth:`interrupt`) when a queued job finds every worker
    busy, and ends when the parking closes.
    """

    watched_by_acceptor = False

    def __init__(self, selector: selectors.BaseSelector, wake: Callable[[], None]):
        super().__init__(selector, wake)
        # A byte here ends the current wait. The lock is held while waiting,
        # so that release() never closes the set under a waiting worker.
        self._watching = threading.Lock()
        try:
            self._interrupts = WakeUpPair()
        except OSError:
            self._epoll.close()
            raise
        self._epoll.register(self._interrupts.reader.fileno(), select.EPOLLIN)
        self._claimed: list[Client] = []  # by the watch, under the lock

    @property
    def has_returns(self) -> bool:
        return bool(self._returned or self._claimed)  # peeks, as above

    def take_claimed(self) -> list[Client]:
        with self._lock:
            claimed, self._claimed = self._claimed, []
        return claimed

    def wait(self) -> Client | None:
        """Block until a parked connection's bytes come, and claim it; None
        once interrupted or closed. One worker at a time (the watch's)."""
        interrupt = self._interrupts.reader.fileno()
        with self._watching:
            while not self._closed:
                for fd, _ in self._epoll.poll(-1, 1):  # one: the rest stay ready
                    if fd == interrupt:
                        self._interrupts.clear()
                        return None
                    client = self._by_fd.get(fd)
                    if client is not None and self._claim_ready(client):
                        return client
        return None

    def _claim_ready(self, client: Client) -> bool:
        with self._lock:
            if not client.parked:  # claimed by the acceptor (to close it)
                return False
            client.parked = False
            self._claimed.append(client)  # its deadline goes (take_claimed)
            full = len(self._claimed) == NOTE_BATCH
        if full:
            self._wake()
        return True

    def interrupt(self) -> None:
        """End the current (or the next) wait: from any thread."""
        self._interrupts.ring()

    def close(self) -> None:
        super().close()
        self.interrupt()

    def release(self) -> None:
        self.close()  # wakes the waiting worker, and stops any other
        with self._watching:  # it has left
            super().release()
            self._interrupts.close()


class ParkingKind(StrEnum):
    """Which parking a threaded server uses (see the module's docstring)."""

    SELECTOR = "selector"
    ONESHOT = "oneshot"
    LEADER = "leader"


DEFAULT_PARKING = ParkingKind.LEADER if ONESHOT_AVAILABLE else ParkingKind.SELECTOR


def parking_for(
    selector: selectors.BaseSelector, wake: Callable[[], None], kind: ParkingKind
) -> SelectorParking:
    """The parking the server was asked for."""
    if kind is ParkingKind.LEADER:
        return LeaderParking(selector, wake)
    if kind is ParkingKind.ONESHOT:
        return OneShotParking(selector, wake)
    return SelectorParking(selector, wake)
