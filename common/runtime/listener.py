"""The listening socket's settings, the same for both editions and the supervisor.

Process-level plumbing beside :mod:`common.runtime.supervisor`, not part of
the sans-I/O protocol core, which never imports it.
"""

from __future__ import annotations

import contextlib
import socket

BACKLOG = 1024
"""Listen backlog: the stdlib's 5 drops SYNs under a burst (1 s client retries)."""

DEFER_ACCEPT_SECONDS = 1
"""``TCP_DEFER_ACCEPT``: how long the kernel holds a connection that has sent
nothing before handing it to ``accept()`` anyway (Linux)."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket with a real backlog and deferred accept (raises OSError).

    Used by the threaded edition and by the ``--processes`` supervisor, whose
    children share it; the asyncio edition lets its loop bind (a host name
    may stand for several addresses) and then calls :func:`defer_accept`.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    defer_accept(sock)
    return sock


def defer_accept(listener: socket.socket) -> None:
    """Have ``accept()`` return a connection once its first bytes are here (Linux).

    A client writes its request as soon as it is connected, so this costs it
    nothing, and it gives both editions two things:

    * Speed (threaded): the acceptor reads the request as it accepts and
      hands the connection straight to a worker, instead of parking it in
      the selector first (the README's performance section has the figures).
    * No lost request at shutdown: a stopping server takes in its backlog
      and closes the connections that have sent nothing; none of them is
      one whose request is still on its way.

    A connection that stays silent is accepted after about a second and then
    treated like any idle one (nginx offers the same as ``listen ...
    deferred``). Elsewhere than Linux this is a no-op; a socket that refuses
    the option (a Unix one, say) is left as it is.
    """
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            listener.setsockopt(socket.IPPROTO_TCP, option, DEFER_ACCEPT_SECONDS)
