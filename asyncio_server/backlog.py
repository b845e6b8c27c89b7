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
    """Let the loop accept the connections already queued on ``listener``."""
    for _ in range(ROUNDS):
        if not any(readable(sock) for sock in listener.sockets):
            break
        await asyncio.sleep(0)
    for _ in range(SETTLE_ROUNDS):  # the ones accepted last: set up, counted
        await asyncio.sleep(0)
