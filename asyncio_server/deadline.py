"""One connection's deadline: what ``asyncio.timeout`` does, kept per connection.

``asyncio.timeout_at(when)`` around each read would make (and cancel) a
timer for every request of a keep-alive connection. A :class:`Deadline`
keeps one timer for the connection's whole life: moving the deadline later
only stores a number, and the timer, if it fires early, re-arms itself for
the new time. When the deadline really passes, it cancels the connection's
task — as ``asyncio.timeout`` does — but only while the task waits inside
``with deadline.until(when):``, which turns that cancellation into
``TimeoutError``. That is a plain ``with``, not an ``async with``: no
coroutine is made per wait (each cost about a microsecond: README,
Performance).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from types import TracebackType
from typing import TypeVar

T = TypeVar("T")

EARLY = 0.001
"""A timer this close to its deadline counts as on time (libuv counts in ms)."""


class Deadline:
    """A deadline for one task's waits, on one timer of the loop's."""

    __slots__ = ("_armed_for", "_fired", "_loop", "_task", "_timer", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        task = asyncio.current_task(loop)
        assert task is not None, "a Deadline belongs to a task"
        self._task = task
        self._when = math.inf  # the deadline of the wait in progress, if any
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = math.inf  # when the timer is due
        self._fired = False  # we cancelled the task: its wait raises TimeoutError

    def until(self, when: float) -> Deadline:
        """``with deadline.until(when): await ...``: the awaits inside raise
        ``TimeoutError`` once the loop's clock reaches ``when``."""
        self._set(when)
        return self

    def __enter__(self) -> None:
        pass

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._when = math.inf  # outside a wait, nothing is due
        if kind is not None and issubclass(kind, asyncio.CancelledError):
            if not self._fired:
                return  # cancelled by someone else: not ours to swallow
            self._fired = False
            if self._task.uncancel() == 0:  # else also cancelled by someone else
                raise TimeoutError from None

    async def wait(self, awaitable: Awaitable[T], until: float) -> T:
        """``await awaitable``, or ``TimeoutError`` once the clock reaches ``until``."""
        with self.until(until):
            return await awaitable

    def after(self, seconds: float) -> float:
        """The loop's clock ``seconds`` from now: an ``until`` for :meth:`wait`."""
        return self._loop.time() + seconds

    def expire(self, at: float = -math.inf) -> None:
        """End the wait in progress (if any) now, or at ``at`` if that is
        later and sooner than its deadline: the server is stopping, or needs
        the connection's room."""
        if self._when != math.inf:
            self._set(min(self._when, max(self._loop.time(), at)))

    def cancel(self) -> None:
        """The connection is over: drop the timer."""
        self._when = math.inf
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set(self, when: float) -> None:
        self._when = when
        if when < self._armed_for:  # sooner than the timer: re-arm it
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(when, self._fire)
            self._armed_for = when

    def _fire(self) -> None:
        self._timer = None
        self._armed_for = math.inf
        when = self._when
        if when == math.inf:
            return  # no wait in progress: nothing to end
        if self._loop.time() + EARLY < when:  # the deadline moved later
            self._set(when)
            return
        self._fired = True
        self._task.cancel()
