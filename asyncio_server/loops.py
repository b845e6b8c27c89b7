"""``--loop auto|asyncio|uvloop``: which event loop runs the server."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from common.runtime.cli import LoopChoice

log = logging.getLogger("hello.asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(Exception):
    """``--loop uvloop`` was asked for, but uvloop does not import."""


def loop_factory(choice: LoopChoice) -> LoopFactory:
    """The event-loop constructor for ``--loop``: auto prefers uvloop."""
    if choice is LoopChoice.ASYNCIO:
        return asyncio.new_event_loop
    try:
        import uvloop  # noqa: PLC0415 - optional dependency, imported on demand
    except ImportError:
        if choice is LoopChoice.UVLOOP:
            raise LoopUnavailable(
                "--loop uvloop: uvloop is not installed (pip install uvloop)"
            ) from None
        return asyncio.new_event_loop
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which loop is really running."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class AcceptErrorLog:
    """The loop's exception handler: running out of descriptors in accept()
    is logged once a spell, not 1024 times a second.

    uvloop never gets here: it accepts into a reserved descriptor and closes
    the connection at once. The stdlib loop reports EMFILE once for every
    slot of the backlog, every time it retries (gh-151615).
    """

    def __init__(self) -> None:
        self._quiet_until = -math.inf

    def __call__(
        self, loop: asyncio.AbstractEventLoop, context: dict[str, object]
    ) -> None:
        if context.get("message") != "socket.accept() out of system resource":
            loop.default_exception_handler(context)
            return
        now = loop.time()
        if now >= self._quiet_until:
            log.error(
                "accept() failed: %s; retrying every second",
                context.get("exception"),
            )
        self._quiet_until = now + 2.5  # the spell lasts while retries keep failing
