"""A threaded server's connection, as the acceptor, the parking and the
workers pass it between them; and the server's connections, counted."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from common.connection import HttpConnection
from common.runtime.logs import client_name


class Client:
    """One accepted connection: its socket, its protocol state, its deadline.

    Only one thread touches a client at a time: whoever parked it until
    someone claims it (the acceptor, or the worker on watch: see
    :mod:`threaded.parking`), then the worker running its job; the hand-overs
    go through the pool's channel and the parking's lock, and both give the
    next owner a consistent view.
    """

    __slots__ = (
        "address",
        "first",
        "http",
        "parked",
        "parks",
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
        """Waiting for its next bytes: set by whoever parks it, cleared by
        whoever claims it (:meth:`~threaded.parking.SelectorParking.claim`)."""
        self.parks = 0
        """How many times it has been parked: a deadline noted for one stay
        does not apply to the next."""
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
