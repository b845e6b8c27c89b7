"""The connections an asyncio server has open: what it counts and waits for.

``Server.wait_closed()`` returns at once on 3.11 and waits for every
connection from 3.12.1 on, so the server tracks its connections itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from asyncio_server.deadline import Deadline


@dataclass(eq=False, slots=True)
class Client:
    """One live connection, as the server sees it."""

    writer: asyncio.StreamWriter
    deadline: Deadline
    name: str
    admitted: bool
    """Counted against --max-connections (refused ones are not)."""
    waiting: bool = True
    """Waiting for a request (or the rest of its head): shutdown may close it."""
    sleeping: bool = False
    """Waiting out a reply's delay (``/sleep``)."""


class Connections:
    """The set of live connections, the --max-connections count, and a way to
    wait until the set is empty."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._clients: set[Client] = set()
        self._admitted = 0
        self._emptied: asyncio.Future[None] | None = None

    def admit(self, writer: asyncio.StreamWriter, name: str) -> Client:
        """Track a new connection; not admitted when it is one too many (503)."""
        admitted = self._admitted < self._limit
        self._admitted += admitted
        client = Client(writer, Deadline(self._loop), name, admitted)
        self._clients.add(client)
        return client

    def forget(self, client: Client) -> None:
        self._clients.discard(client)
        self._admitted -= client.admitted
        if not self._clients and self._emptied and not self._emptied.done():
            self._emptied.set_result(None)

    def __iter__(self) -> Iterator[Client]:
        return iter(list(self._clients))  # a copy: closing one changes the set

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def sleeping(self) -> int:
        return sum(1 for client in self._clients if client.sleeping)

    @property
    def write_backlog(self) -> int:
        """The largest unsent reply backlog of any one connection (bytes)."""
        return max(
            (c.writer.transport.get_write_buffer_size() for c in self._clients),
            default=0,
        )

    def sockets(self) -> list[socket.socket]:
        """Their sockets (uvloop's are look-alikes)."""
        found = (c.writer.get_extra_info("socket") for c in self._clients)
        return [sock for sock in found if sock is not None]

    def abort_all(self) -> None:
        for client in list(self._clients):
            client.writer.transport.abort()

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until no connection is left; False if ``timeout`` passed first."""
        if not self._clients:
            return True
        self._emptied = self._loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._emptied
        except TimeoutError:
            return False
        return True
