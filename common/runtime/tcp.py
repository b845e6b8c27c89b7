"""The TCP tricks both shells use, each a small function with its reason."""

from __future__ import annotations

import contextlib
import select
import socket

_CORK = getattr(socket, "TCP_CORK", None)


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
