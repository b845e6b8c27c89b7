"""Keeping a process on one CPU: the threaded edition's ``--one-cpu``.

The pool's threads share one interpreter lock, so only one of them runs
Python at a time and a second CPU adds no speed; it adds cost. Every
hand-off between threads (the acceptor waking a worker, a lock passed on)
that crosses CPUs is an inter-processor wake-up, slow on a virtual machine
above all. On one CPU the same hand-off is a context switch. The README's
performance section has the measurements.

Process-level plumbing beside :mod:`common.runtime.resources`; Linux's
``sched_setaffinity``, and a no-op where it does not exist.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("hello.affinity")


def keep_to_one_cpu(index: int = 0) -> int | None:
    """Restrict this process to one of the CPUs it may run on now: the
    ``index``-th, counting round (``--processes``: child ``i`` on CPU ``i``).

    Threads started afterwards inherit it, so call it before starting any.
    Returns the CPU, or None where the system does not offer or refuses it.
    """
    get = getattr(os, "sched_getaffinity", None)
    set_ = getattr(os, "sched_setaffinity", None)
    if get is None or set_ is None:  # pragma: no cover - not on Linux
        return None
    try:
        allowed = sorted(get(0))
        cpu: int = allowed[index % len(allowed)]
        set_(0, {cpu})
    except (OSError, IndexError) as error:
        log.debug("Not kept to one CPU: %s", error)
        return None
    log.debug("Kept to CPU %d (of %d allowed).", cpu, len(allowed))
    return cpu
