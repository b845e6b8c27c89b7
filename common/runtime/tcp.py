"""The TCP tricks both shells use, each a small function (or class) with its reason."""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
import time
from _socket import socket as raw_socket

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


class LastReply:
    """A connection's last reply and our FIN, in one segment, sent at once.

    For a transport, which takes no ``MSG_MORE`` (the threaded edition's
    way: :data:`LAST_WORD`). Made before the reply is written, it corks the
    socket (Linux's ``TCP_CORK``), so the write is held; :meth:`send` then
    shuts our side, which sends reply and FIN together — now, not when the
    loop gets round to closing the socket after the streams' own callbacks
    (a corked reply waited for that: the README's tails section). One packet
    fewer per ``Connection: close`` response. Where there is no such option,
    or no descriptor, it does nothing.
    """

    __slots__ = ("_handle",)

    def __init__(self, sock: object) -> None:
        self._handle: raw_socket | None = None
        fileno = getattr(sock, "fileno", None)
        if _CORK is None or fileno is None:
            return
        # A second socket object on the transport's descriptor, detached
        # after use; the family given matters to neither call it makes.
        handle = raw_socket(socket.AF_INET, socket.SOCK_STREAM, 0, fileno())
        try:
            handle.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        except OSError:  # not TCP (a Unix socket, say)
            handle.detach()
            return
        self._handle = handle

    def send(self, *, written: bool) -> None:
        """Send the reply with our FIN now, if the transport has ``written``
        all of it (else the close will, once it has); let go of the socket."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            if written:
                handle.shutdown(socket.SHUT_WR)
        except OSError:  # the client has gone: the close cleans up
            pass
        finally:
            handle.detach()


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
