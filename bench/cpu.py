"""A server's CPU time (user + system), read from ``/proc`` (Linux).

``python -m bench throughput`` reads it just before and just after each load
and divides the difference by the requests answered: server CPU per request.
A server may serve from child processes (``--processes N``, gunicorn's
workers, granian's), so a process's figure is its own time, the time of the
children it has waited for, and that of every live descendant. The kernel
counts in clock ticks (``SC_CLK_TCK``, 100 a second on Linux): 10 ms, so a
short run's figure is coarse. Anywhere ``/proc`` cannot be read, None.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

LISTEN = "0A"
"""The TCP state ``LISTEN`` in ``/proc/net/tcp``."""
TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What the bench needs of one ``/proc/PID/stat`` line."""

    pid: int
    """Field 1."""
    parent: int
    """Field 4: the parent's pid."""
    ticks: int
    """Fields 14-17, utime + stime + cutime + cstime: its own CPU (user and
    system) and that of the children it has waited for, in clock ticks."""


def parse_stat(line: str) -> ProcStat:
    """Fields 1, 4 and 14-17 of a ``/proc/PID/stat`` line; ValueError if it is
    not one. The command name (field 2) is in parentheses and may itself hold
    spaces and parentheses: the fields that follow it start after the last
    ``)``."""
    head, bracket, tail = line.rpartition(")")
    if not bracket:
        raise ValueError(f"not a /proc/PID/stat line: {line[:60]!r}")
    fields = tail.split()  # fields[0] is field 3, the state
    if len(fields) < 15:
        raise ValueError(f"too few fields in /proc/PID/stat: {line[:60]!r}")
    pid = int(head.partition("(")[0])
    utime, stime, cutime, cstime = (int(field) for field in fields[11:15])
    return ProcStat(pid, int(fields[1]), utime + stime + cutime + cstime)


def read_stat(pid: int) -> ProcStat | None:
    """One process's ``/proc/PID/stat``; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            return parse_stat(file.read())
    except (OSError, ValueError):
        return None


def _pids() -> list[int]:
    """Every process (not thread) in ``/proc``; empty when there is none."""
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _parents() -> dict[int, int]:
    """Every live process's parent, by pid."""
    stats = (read_stat(pid) for pid in _pids())
    return {stat.pid: stat.parent for stat in stats if stat is not None}


def _descendants(pid: int, parents: dict[int, int]) -> list[int]:
    """The processes below ``pid``, children first."""
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, index = [pid], 0
    while index < len(found):
        found += children.get(found[index], [])
        index += 1
    return found[1:]


def _ticks_per_second() -> int | None:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):  # no sysconf, or no such name
        return None


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of ``pid``, its waited-for children and
    every live descendant; None when ``/proc`` cannot tell (not Linux, the
    process gone)."""
    own = read_stat(pid)
    tick = _ticks_per_second()
    if own is None or not tick:
        return None
    ticks = own.ticks
    for descendant in _descendants(pid, _parents()):
        if (stat := read_stat(descendant)) is not None:  # None: it just exited
            ticks += stat.ticks
    return ticks / tick


class CpuMeter:
    """The CPU seconds a process tree spends between :meth:`start` and
    :meth:`stop`; ``pid`` None (a server not found) measures nothing."""

    def __init__(self, pid: int | None) -> None:
        self._pid = pid
        self._start: float | None = None

    def start(self) -> None:
        self._start = None if self._pid is None else cpu_seconds(self._pid)

    def stop(self) -> float | None:
        """The seconds since :meth:`start`; None when either reading failed,
        or when the total fell (a process left the tree unwaited-for)."""
        if self._pid is None or self._start is None:
            return None
        end = cpu_seconds(self._pid)
        if end is None or end < self._start:
            return None
        return end - self._start


# -- the process behind a port ------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    inodes = set()
    for table in TCP_TABLES:
        with contextlib.suppress(OSError), open(table, encoding="ascii") as lines:
            next(lines, None)  # the heading
            for line in lines:
                fields = line.split()
                if len(fields) < 10 or fields[3] != LISTEN:
                    continue
                if int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(fields[9])
    inodes.discard("0")
    return inodes


def _holders(inodes: set[str]) -> Iterator[int]:
    """The processes with one of these sockets among their open files (those
    whose ``/proc/PID/fd`` we may read)."""
    links = {f"socket:[{inode}]" for inode in inodes}
    for pid in _pids():
        folder = f"/proc/{pid}/fd"
        try:
            descriptors = os.listdir(folder)
        except OSError:  # another user's, or gone
            continue
        for descriptor in descriptors:
            with contextlib.suppress(OSError):
                if os.readlink(f"{folder}/{descriptor}") in links:
                    yield pid
                    break


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` on this machine; of several that
    share the socket (a supervisor and its children), the one above all the
    others, so that :func:`cpu_seconds` on it counts them all. None when no
    process is found, or when none of them is above all the others."""
    holders = set(_holders(_listening_inodes(port)))
    if len(holders) <= 1:
        return next(iter(holders), None)
    parents = _parents()
    for holder in sorted(holders):
        if holders <= {holder, *_descendants(holder, parents)}:
            return holder
    return None
