"""The stop policy both editions and the supervisor share.

SIGINT or SIGTERM asks for a graceful stop; a second one, for a stop at once.
Each caller says what the two mean for it; this counts, so the rule lives in
one place. A stop by ``--max-requests`` is not a signal and is not counted:
a SIGTERM that finds the server already draining is still the first.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopPolicy:
    """Call it with each stop signal received: the first runs ``graceful``,
    every later one ``at_once``; both get the signal's number."""

    def __init__(
        self, graceful: Callable[[int], None], at_once: Callable[[int], None]
    ) -> None:
        self._graceful = graceful
        self._at_once = at_once
        self.received = 0

    def __call__(self, signum: int) -> None:
        self.received += 1
        if self.received == 1:
            self._graceful(signum)
        else:
            self._at_once(signum)


def name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    return signal.Signals(signum).name


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Block SIGINT and SIGTERM in this thread, and so in threads started meanwhile.

    The kernel hands a signal sent to the process to any thread that does not
    block it; Python runs handlers only in the main thread, and only when that
    thread runs. Threads started in this block (a pool's workers) leave the
    stop signals to the main thread.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def stop_signals_handled(
    on_signal: Callable[[int], None], wake_fd: int
) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM call ``on_signal(signum)``.

    Python runs a handler in the main thread, between two bytecodes: a
    signal that arrives as that thread is about to sleep in select()
    interrupts no system call. So each signal also writes a byte to
    ``wake_fd`` (``signal.set_wakeup_fd``): a select() watching its other end
    returns, and the handler runs. Main thread only (else ``ValueError``).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    previous_fd: int | None = None
    previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
    try:
        previous_fd = signal.set_wakeup_fd(wake_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        if previous_fd is not None:
            signal.set_wakeup_fd(previous_fd)
