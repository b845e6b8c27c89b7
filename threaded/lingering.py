"""Closing in stages (RFC 9112 §9.6), in the acceptor's selector.

Closing a socket with the client's bytes still unread sends a reset, which
can destroy our last response before the client has read it (an error
answered while the client was still sending its request, say). So the
server sends its FIN first, then reads and drops what the client still
sends — for ``Limits.linger_timeout`` seconds and ``Limits.linger_bytes`` at
most, as nginx's ``lingering_close`` — and only then closes. The acceptor
does the reading, so a client that keeps sending holds a descriptor for a
bounded time, never a worker.
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable

from common.runtime.tcp import DONTWAIT, RECV_SIZE, discard_input


class _Lingering:
    """A connection closing in stages: our FIN is out, its bytes are dropped."""

    __slots__ = ("deadline", "left", "sock")

    def __init__(self, sock: socket.socket, deadline: float, left: int) -> None:
        self.sock = sock
        self.deadline = deadline
        self.left = left


class LingeringCloses:
    """The sockets the acceptor is closing in stages (see the module).

    Any thread hands one over (:meth:`linger`); the rest runs on the
    acceptor's thread, in its selector.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        wake: Callable[[], None],
        seconds: float,
        max_bytes: int,
    ) -> None:
        self._selector = selector
        self._wake = wake
        self._seconds = seconds
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._handed: list[socket.socket] = []  # under the lock
        self._stopped = False
        self._lingering: set[_Lingering] = set()  # the acceptor's own
        self.next_check = math.inf
        """When :meth:`expire` must next run (``time.monotonic()``)."""

    def linger(self, sock: socket.socket) -> None:
        """Send our FIN now; the acceptor drops what comes, then closes."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # gone already
            sock.close()
            return
        with self._lock:
            queued = not self._stopped
            if queued:
                self._handed.append(sock)
        if queued:
            self._wake()
        else:  # stopping: drop what is buffered, at least, and close
            discard_input(sock)
            sock.close()

    def take(self, now: float) -> None:
        """Watch what was handed over (acceptor only)."""
        with self._lock:
            socks, self._handed = self._handed, []
        deadline = now + self._seconds
        for sock in socks:
            lingering = _Lingering(sock, deadline, self._max_bytes)
            try:
                self._selector.register(sock, selectors.EVENT_READ, lingering)
            except (OSError, ValueError):
                sock.close()
                continue
            self._lingering.add(lingering)
            self.next_check = min(self.next_check, deadline)

    def owns(self, data: object) -> bool:
        """Is this selector key's data one of ours?"""
        return isinstance(data, _Lingering)

    def drop_input(self, lingering: _Lingering) -> None:
        """Read and drop what came; end at the client's EOF or past the bound."""
        try:
            data = lingering.sock.recv(RECV_SIZE, DONTWAIT)
        except BlockingIOError:
            return
        except OSError:  # reset: nothing left to protect
            data = b""
        lingering.left -= len(data)
        if not data or lingering.left <= 0:
            self._end(lingering)

    def expire(self, now: float) -> None:
        """Close the sockets whose time is up."""
        if now < self.next_check:
            return
        for lingering in [x for x in self._lingering if x.deadline <= now]:
            self._end(lingering)
        self.next_check = min((x.deadline for x in self._lingering), default=math.inf)

    def finish(self) -> None:
        """Shutting down, once the acceptor's loop has ended: linger over what
        is left, all at once in a selector of our own, until each client has
        closed or the time is up (the server exits that much later at most);
        from then on :meth:`linger` closes at once."""
        with self._lock:
            self._stopped = True
            socks, self._handed = self._handed, []
        deadline = time.monotonic() + self._seconds
        left = [
            *self._lingering,
            *(_Lingering(s, deadline, self._max_bytes) for s in socks),
        ]
        self._lingering = set()
        with selectors.DefaultSelector() as selector:
            self._selector = selector  # the acceptor's is closed: _end uses ours
            for lingering in left:
                try:
                    selector.register(lingering.sock, selectors.EVENT_READ, lingering)
                except (OSError, ValueError):
                    lingering.sock.close()
                    continue
                self._lingering.add(lingering)
            while self._lingering and (wait := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(wait):
                    self.drop_input(key.data)
            for lingering in list(self._lingering):
                self._end(lingering)

    def _end(self, lingering: _Lingering) -> None:
        self._lingering.discard(lingering)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(lingering.sock)
        lingering.sock.close()
