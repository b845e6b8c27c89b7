"""What a design costs while it serves the sleeps: its threads and its memory.

The chapter's argument against a thread per connection is what the threads
cost; this puts figures on it. While the latency scenario runs, the server's
``/proc/PID/status`` is read every few milliseconds for its thread count
(``Threads``), and at the end for its peak resident memory (``VmHWM``, the
kernel's high-water mark, so no peak between two readings is missed). Linux
only: elsewhere, and for a ``--target`` the bench did not start, both are None.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

INTERVAL = 0.005
"""Seconds between two readings of the thread count."""


@dataclass(frozen=True, slots=True)
class Footprint:
    peak_threads: int | None
    peak_rss_mib: float | None


def read_status(pid: int) -> dict[str, str]:
    """The fields of ``/proc/PID/status`` (empty if it cannot be read)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
    except OSError:
        return {}
    return fields


def kib_to_mib(value: str | None) -> float | None:
    """``12345 kB`` (a status field) in MiB; None if it is not that."""
    if value is None or not value.endswith(" kB"):
        return None
    return int(value.removesuffix(" kB")) / 1024


class FootprintWatch:
    """Samples one process's threads until :meth:`stop` (an asyncio task)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._peak_threads: int | None = None
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            threads = read_status(self._pid).get("Threads")
            if threads is not None:
                self._peak_threads = max(self._peak_threads or 0, int(threads))
            await asyncio.sleep(INTERVAL)

    async def stop(self) -> Footprint:
        """The peaks since the watch began."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        rss = kib_to_mib(read_status(self._pid).get("VmHWM"))
        return Footprint(self._peak_threads, rss)
