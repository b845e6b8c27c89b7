"""``--loop auto|asyncio|uvloop``: which event loop runs the server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from common.runtime.cli import LoopChoice

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
