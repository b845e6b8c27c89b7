"""The threaded servers' listening socket, and what to do when accepting fails."""

from __future__ import annotations

import errno
import socket

from common.runtime.cli import Options
from common.runtime.listener import defer_accept, listen

ACCEPT_PAUSE = 0.5
"""Seconds to stop accepting after EMFILE and friends, instead of spinning."""
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener(socket.socket):
    """A listening socket whose ``accept()`` costs less Python: ``family`` and
    ``type``, which ``accept()`` reads for every new socket, are looked up
    once instead of turned into enum members each time."""

    def __init__(self, sock: socket.socket) -> None:
        family, kind, proto = sock.family, sock.type, sock.proto
        super().__init__(family, kind, proto, sock.fileno())
        sock.detach()  # only now: if that failed, ``sock`` still owns the fd
        self.setblocking(False)
        self._family = family
        self._kind = kind

    @classmethod
    def adopt(cls, sock: socket.socket) -> Listener:
        """Take over a listening socket, set up for serving; closes it on failure.

        ``TCP_NODELAY``, which accepted sockets inherit (Linux, the BSDs), so
        it costs no call per connection; deferred accept, so the acceptor
        reads each request as it accepts.
        """
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            defer_accept(sock)
            return cls(sock)
        except OSError:
            sock.close()
            raise

    @property
    def family(self) -> socket.AddressFamily:
        return self._family

    @property
    def type(self) -> socket.SocketKind:
        return self._kind


def open_listener(options: Options, sock: socket.socket | None) -> Listener:
    """The socket to serve, set up for it: ``sock`` when one was handed over
    (--processes, --fd, systemd), else one bound to --host and --port."""
    return Listener.adopt(listen(options.host, options.port) if sock is None else sock)
