"""Waking workers on demand: the one policy the server adds to the book's pool.

Rust threads run in parallel, so waking a sleeping worker for every job
costs next to nothing there. Python threads share one interpreter lock: only
one runs Python at a time, and every extra runnable thread turns each socket
call into a lock hand-off between threads (a futex wake, a context switch).
So here a job wakes a sleeping worker only when no awake worker is free to
take it soon: every awake one is inside :meth:`WakeOnDemandPool.blocking` (a
job that waits — the book's ``/sleep`` — says so), or the queue has not moved
for :data:`STALL_SECONDS` (a job that waits without saying so). The README's
performance section has the measurements.

A job queued while every awake worker is inside ``blocking()`` and none
sleeps calls the pool's ``when_stuck`` callback: a worker whose wait can be
cut short (the watch over parked connections, :mod:`threaded.parking`) then
gives way to the job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from threaded.pool import (
    Channel,
    ChannelClosedError,
    Job,
    PoolShutDownError,
    ThreadPool,
)

__all__ = ["STALL_SECONDS", "OnDemandChannel", "WakeOnDemandPool"]

T = TypeVar("T")

STALL_SECONDS = 0.01
"""A queue that has not moved for this long wakes a worker even though one is
awake (it may be waiting without having said so)."""


class OnDemandChannel(Channel[T]):
    """The book's channel, waking a receiver only when none of ``receivers``
    (the threads that call :meth:`recv`) is awake and free."""

    def __init__(self, capacity: int | None = None, *, receivers: int) -> None:
        if receivers < 1:
            raise ValueError(f"a channel needs at least one receiver, not {receivers}")
        super().__init__(capacity)
        self.receivers = receivers
        # All under the lock: receivers asleep in recv, how many of those have
        # been woken but are not yet running, receivers inside blocking(), and
        # when an item was last taken.
        self._sleeping = 0
        self._woken = 0
        self._blocked = 0
        self._last_taken = time.monotonic()
        self._standing: T | None = None  # queued by send_always
        self.when_stuck: Callable[[], None] = _nothing
        """Called (lock held: it must be quick) when an item is queued and no
        receiver is free or asleep to take it."""

    def send_always(self, item: T) -> None:
        """Queue ``item`` even when the channel is full, and take no room from
        the others: for a standing job (one at a time), which must never be
        refused and must never make another refused."""
        with self._lock:
            if self._closed:
                raise ChannelClosedError("send on a closed channel")
            self._standing = item
            self._push(item)

    def _push(self, item: T) -> None:
        self._items.append(item)
        if self._sleeper_to_wake():
            if self._none_free() or self._stalled():
                self._wake_one()
        elif self._none_free():
            self.when_stuck()

    def _stalled(self) -> bool:
        """Items wait and none has been taken for a while (lock held)."""
        waited = time.monotonic() - self._last_taken
        return len(self._items) > 1 and waited > STALL_SECONDS

    def _wait_for_items(self) -> None:
        self._sleeping += 1
        self._not_empty.wait()
        self._sleeping -= 1
        if self._woken:
            self._woken -= 1

    def _full(self) -> bool:
        queued = len(self._items) - (self._standing is not None)
        return self.capacity is not None and queued >= self.capacity

    def _taken(self, item: T) -> None:
        self._last_taken = time.monotonic()
        if item is self._standing:
            self._standing = None
        super()._taken(item)

    def _sleeper_to_wake(self) -> bool:
        """Items are queued and a receiver is asleep, not yet woken (lock held)."""
        return bool(self._items) and self._sleeping > self._woken

    def _none_free(self) -> bool:
        """No receiver is awake and outside blocking() (lock held)."""
        awake = self.receivers - self._sleeping + self._woken
        return awake - self._blocked <= 0

    def _wake_one(self) -> None:
        # Lock held. A woken receiver counts as awake from now on.
        self._woken += 1
        self._not_empty.notify()

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        """Mark a receiver's wait (a sleep, a slow client) while it is in progress:
        a sleeping receiver is woken for the queued items now, since this one
        will not be free to take them soon."""
        with self._lock:
            self._blocked += 1
            if self._none_free():
                if self._sleeper_to_wake():
                    self._wake_one()
                elif self._items:
                    self.when_stuck()
        try:
            yield
        finally:
            with self._lock:
                self._blocked -= 1

    def nudge(self) -> float | None:
        """Wake a sleeping receiver if the queue has stalled.

        For a caller that notices time passing while nothing is sent (an
        event loop), so that a wait nobody marked cannot hold up the queue
        for long. Returns in how many seconds to call again, or None when
        there is nothing to watch (no items, or no receiver asleep).
        """
        with self._lock:
            if not self._sleeper_to_wake():
                return None
            waited = time.monotonic() - self._last_taken
            if waited < STALL_SECONDS:
                return STALL_SECONDS - waited
            self._wake_one()
            return STALL_SECONDS


def _nothing() -> None:
    pass


class WakeOnDemandPool(ThreadPool):
    """The book's pool on an :class:`OnDemandChannel`. Its jobs must wrap long
    waits in :meth:`blocking`, or they hold up the queue for
    :data:`STALL_SECONDS`."""

    _sender: OnDemandChannel[Job]

    def _channel(self, size: int, capacity: int | None) -> OnDemandChannel[Job]:
        return OnDemandChannel(capacity, receivers=size)

    def blocking(self) -> contextlib.AbstractContextManager[None]:
        return self._sender.blocking()

    def execute_always(self, job: Job) -> None:
        """Queue ``job`` even when the queue is full (see ``send_always``).

        Raises :class:`~threaded.pool.PoolShutDownError` after shutdown.
        """
        try:
            self._sender.send_always(job)
        except ChannelClosedError:
            raise PoolShutDownError(
                "execute() on a thread pool that was shut down"
            ) from None

    def when_stuck(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a queued job finds no worker free or
        asleep (see the module's docstring)."""
        self._sender.when_stuck = callback

    def nudge(self) -> float | None:
        return self._sender.nudge()
