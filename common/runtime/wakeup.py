"""A wake-up pair: a byte sent on one socket makes the other readable, so a
thread blocked in ``select``/``epoll`` on it returns. From any thread, and
from a signal handler (its ``writer`` can be a signal's wake-up descriptor)."""

from __future__ import annotations

import contextlib
import socket


class WakeUpPair:
    """``ring()`` wakes whoever waits on ``reader``; ``clear()`` quiets it."""

    def __init__(self) -> None:
        """Raises ``OSError`` if the pair cannot be made."""
        self.reader, self.writer = socket.socketpair()
        for end in (self.reader, self.writer):
            end.setblocking(False)

    def ring(self) -> None:
        # Full means a wake-up is already pending; closed means we are done.
        with contextlib.suppress(OSError):
            self.writer.send(b"\0")

    def clear(self) -> None:
        # One read is enough: each ring is one byte, and any byte left over
        # only causes one more wake-up.
        with contextlib.suppress(OSError):
            self.reader.recv(4096)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()
