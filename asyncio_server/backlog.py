"""Taking in a listener's backlog before it closes, so that no client is reset.

Closing a listener resets every connection still queued on it, and those
clients may have sent their whole request already. A stopping server first
lets the loop accept them; they are then answered like any connection that
was accepted before the shutdown (with ``Connection: close``).
"""

from __future__ import annotations

import asyncio

from common.runtime.tcp import readable

ROUNDS = 100
"""The most loop iterations spent accepting (a bound: clients keep coming)."""
SETTLE_ROUNDS = 3
"""Loop iterations waited once the backlog is empty. A connection accepted
last is set up over the next ones (its ``connection_made``, then its
handler's task; asyncio's own loop makes the transport in a task first, and
from 3.12 on drops the connection if the server is closed by then). Until its
handler runs the server does not count it, and could exit with it unanswered."""


async def accept_backlog(listener: asyncio.Server) -> None:
    """Let the loop accept the connections already queued on ``listener``,
    then close it once every one it accepted is set up (and so counted).

    Stopping has two steps, since neither loop can do both in one: asyncio's
    own loop drops a connection it accepted but has not yet made a transport
    for if the server closes meanwhile (3.12+), so it first stops accepting
    with its reader removed, the server still open; uvloop makes the
    transport at once but accepts until the server closes."""
    for _ in range(ROUNDS):
        if not any(readable(sock) for sock in listener.sockets):
            break
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    for sock in listener.sockets:
        loop.remove_reader(sock.fileno())  # asyncio's loop: accept no more
    await _settle()
    listener.close()  # uvloop: accept no more
    await _settle()


async def _settle() -> None:
    for _ in range(SETTLE_ROUNDS):  # the ones accepted last: set up, counted
        await asyncio.sleep(0)
