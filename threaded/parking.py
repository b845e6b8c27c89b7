"""Where a keep-alive connection waits for its next bytes, costing no worker.

Two ways, chosen when the server is made, behind one interface:

* :class:`SelectorParking`, the portable one (gunicorn's gthread does the
  same): parked connections sit in the acceptor's selector, and only the
  acceptor touches it. A worker hands a connection back by queueing it and
  waking the acceptor, which registers it.
* :class:`OneShotParking` (Linux): parked connections sit in an epoll set
  of their own, nested in the selector, each armed with ``EPOLLONESHOT``: its
  next bytes fire once and disarm it. The worker re-arms a connection itself
  (one ``epoll_ctl``) instead of waking the acceptor for a register and an
  unregister per request; the acceptor notes hand-backs when it next wakes.
"""

from __future__ import annotations

import select
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from common.connection import HttpConnection
from common.runtime.logs import client_name

ONESHOT_AVAILABLE = hasattr(select, "epoll")
_ONESHOT_READ = getattr(select, "EPOLLIN", 0) | getattr(select, "EPOLLONESHOT", 0)

Events = list[tuple[selectors.SelectorKey, int]]


class Client:
    """One accepted connection: its socket, its protocol state, its deadline.

    Only one thread touches a client at a time: the acceptor while it is
    parked, the worker running its job otherwise; the hand-over goes through
    the pool's channel one way and the locked hand-back the other, and both
    give the next owner a consistent view.
    """

    __slots__ = (
        "address",
        "first",
        "http",
        "parked",
        "request_started",
        "sock",
        "unsent",
    )

    def __init__(
        self, sock: socket.socket, address: tuple[str, int], http: HttpConnection
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
        self.unsent: bytes | memoryview = b""
        """Answers the socket could not take yet (see :mod:`threaded.writing`)."""

    def name(self) -> str:
        return client_name(self.address)


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
    writing: int
    """Being sent the rest of their answers by the acceptor, costing no worker."""


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
        return True

    def unpark(self, client: Client) -> None:
        """Stop watching it: its bytes came, or it is closing (acceptor only)."""
        client.parked = False
        self._selector.unregister(client.sock)

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

    def close(self) -> None:
        """Take no more hand-backs: from now on workers close instead."""
        with self._lock:
            self._closed = True

    def release(self) -> None:
        """Free what the parking holds of the kernel's."""


class OneShotParking(SelectorParking):
    """Parked connections in a one-shot epoll set the workers re-arm (Linux)."""

    wakes_acceptor = False

    def __init__(self, selector: selectors.BaseSelector, wake: Callable[[], None]):
        super().__init__(selector, wake)
        self._epoll = select.epoll()
        try:
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
        client.parked = False  # disarmed already by its event

    def hand_back(self, client: Client) -> bool:
        """The worker arms it itself; the acceptor only gives it its deadline
        when it next wakes (no wake-up, no register, no unregister)."""
        with self._lock:
            if self._closed or not self.park(client):
                return False
            self._returned.append(client)
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


def parking_for(
    selector: selectors.BaseSelector, wake: Callable[[], None], *, oneshot: bool
) -> SelectorParking:
    """The parking the server was asked for: one-shot epoll where available."""
    if oneshot:
        return OneShotParking(selector, wake)
    return SelectorParking(selector, wake)
