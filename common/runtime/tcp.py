"""The TCP tricks both shells use, each a small function with its reason."""

from __future__ import annotations

import contextlib
import fcntl
import select
import socket
import struct
import termios
import time

_CORK = getattr(socket, "TCP_CORK", None)
_OUTQ = getattr(termios, "TIOCOUTQ", None)  # SIOCOUTQ on a TCP socket (Linux)
_RDHUP = getattr(select, "POLLRDHUP", 0)  # the peer closed its side (Linux)

RECV_SIZE = 65536
"""Bytes read per ``recv``: several pipelined requests, or a whole head."""
DONTWAIT = socket.MSG_DONTWAIT
"""Passed to every call on a blocking socket that must not wait: cheaper than
switching the socket to non-blocking mode (one system call per connection)."""
LAST_WORD = DONTWAIT | getattr(socket, "MSG_MORE", 0)
"""Flags for the last send before a close (Linux): ``MSG_MORE`` holds the
bytes back for the close, which sends them with its FIN in one segment."""


def readable(fileobj: object) -> bool:
    """Bytes (or an EOF, or a pending connection) wait on it, right now.

    ``poll``, not ``select``: descriptors past 1023 are common here.
    """
    try:
        poller = select.poll()
        poller.register(fileobj, select.POLLIN)  # type: ignore[arg-type]
        return bool(poller.poll(0))
    except (OSError, ValueError, TypeError):  # closed, or no descriptor
        return False


def cork(sock: object) -> None:
    """Hold what is written next until the socket is closed (Linux's TCP_CORK).

    The last reply before a close then leaves with the FIN, in one segment:
    one packet fewer per ``Connection: close`` response. (The threaded
    edition passes ``MSG_MORE`` to its last ``send`` instead; an asyncio
    transport takes no flags.) A no-op where the option does not exist.
    """
    setsockopt = getattr(sock, "setsockopt", None)
    if setsockopt is not None and _CORK is not None:
        with contextlib.suppress(OSError):
            setsockopt(socket.IPPROTO_TCP, _CORK, 1)


def discard_input(sock: socket.socket) -> None:
    """Read and drop what is already buffered (a few reads at most, never waiting)."""
    try:
        for _ in range(4):
            if not sock.recv(RECV_SIZE, DONTWAIT):
                return
    except OSError:  # BlockingIOError: nothing more; or reset
        pass


def send_once(sock: socket.socket, data: bytes) -> int:
    """Drop unread input, then one ``send`` that never waits, before a close.

    For the 503s and 408s: what the client's buffer cannot take at once is
    lost to it, not a thread to us. Returns the bytes sent (0 on an error).
    """
    try:
        discard_input(sock)
        return sock.send(data, LAST_WORD)
    except OSError:
        return 0


def in_flight(sock: object) -> int:
    """Bytes written to ``sock`` that the client has not yet acknowledged.

    What a write timeout watches for progress: a client reading slowly
    shrinks it long before the socket turns writable again (Linux waits
    until a third of a send buffer of megabytes is free). 0 where unknown.
    """
    fileno = getattr(sock, "fileno", None)
    if _OUTQ is None or fileno is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(fileno(), _OUTQ, b"\0" * 4))[0])
    except (OSError, ValueError):  # closed, or not a TCP socket
        return 0


def sleep_unless_departed(sock: socket.socket, seconds: float) -> bool:
    """``time.sleep(seconds)``, cut short if the client closes or resets the
    connection meanwhile; True if it did (its answer has no one to go to).

    ``POLLRDHUP`` sees the client's FIN even behind bytes it pipelined, so a
    client that sent more requests and waits is not taken for gone. Where it
    does not exist, this is ``time.sleep``.
    """
    if not _RDHUP:
        time.sleep(seconds)
        return False
    poller = select.poll()
    poller.register(sock, _RDHUP)  # POLLERR and POLLHUP are always reported
    return bool(poller.poll(seconds * 1000))
