"""The listening socket's settings, the same for both editions and the supervisor.

Process-level plumbing beside :mod:`common.runtime.supervisor`, not part of
the sans-I/O protocol core, which never imports it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import MutableMapping

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


def defer_accept(listener: socket.socket, seconds: int = DEFER_ACCEPT_SECONDS) -> None:
    """Have ``accept()`` return a connection once its first bytes are here (Linux).

    The threaded edition's choice: its acceptor reads the request as it
    accepts and hands the connection straight to a worker, instead of
    parking it in the selector first (the README's performance section has
    the figures). And a stopping server that takes in its backlog and closes
    the connections that have sent nothing closes none whose request is
    still on its way.

    A connection that stays silent is accepted after about a second and then
    treated like any idle one (nginx offers the same as ``listen ...
    deferred``). ``seconds=0`` turns it off: the asyncio edition accepts at
    once (a socket from the supervisor comes deferred). Elsewhere than Linux
    this is a no-op; a socket that refuses the option (a Unix one, say) is
    left as it is.
    """
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            listener.setsockopt(socket.IPPROTO_TCP, option, seconds)


SD_LISTEN_FDS_START = 3
"""The first descriptor systemd passes (``SD_LISTEN_FDS_START``)."""
_SYSTEMD_VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class InheritedSocketError(Exception):
    """The descriptor we were handed is not a listening TCP socket (one line)."""


def inherited_listener(
    fd: int | None, environ: MutableMapping[str, str] | None = None
) -> socket.socket | None:
    """The listening socket this process was handed, or None to bind one.

    ``--fd N`` names it; otherwise the socket-activation protocol of systemd
    (``systemd.socket``, ``systemd-socket-activate``) does: ``LISTEN_FDS``
    descriptors from 3 on, meant for this process if ``LISTEN_PID`` says
    so. The first is served (a unit that passes more gets the rest closed
    by no one: name one ``ListenStream=``). The variables are then removed,
    as ``sd_listen_fds(1)`` does, so that nothing started later takes them
    for its own. No libsystemd needed: the protocol is these three names.
    """
    environ = os.environ if environ is None else environ
    if fd is None:
        count = environ.get("LISTEN_FDS")
        if count is None or environ.get("LISTEN_PID", str(os.getpid())) != str(
            os.getpid()
        ):
            return None
        for name in _SYSTEMD_VARIABLES:
            environ.pop(name, None)
        if not count.isdigit() or int(count) < 1:
            raise InheritedSocketError(f"LISTEN_FDS={count!r} passes no socket")
        fd = SD_LISTEN_FDS_START
        where = f"descriptor {fd} (LISTEN_FDS)"
    else:
        where = f"--fd {fd}"
    try:
        sock = socket.socket(fileno=fd)
    except OSError as error:
        raise InheritedSocketError(f"{where} is not a socket: {error}") from None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
    if not tcp or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()  # not ours to close
        raise InheritedSocketError(f"{where} is not a listening TCP socket")
    return sock  # each server sets it up as it does a socket it binds


def shown_host(host: str, sock: socket.socket | None) -> str:
    """The address for the start-up line: ``--host`` for a socket bound to
    it, the socket's own for one handed over (--processes, --fd, systemd)."""
    if sock is None:
        return host
    address = sock.getsockname()
    return str(address[0]) if isinstance(address, tuple) else str(address)


def handed_over(fd: int | None) -> socket.socket | None:
    """:func:`inherited_listener` for a program's start: a descriptor that is
    no listening socket is one line on stderr and exit status 1."""
    try:
        return inherited_listener(fd)
    except InheritedSocketError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
