"""Process resources both editions set up at start-up: the open-file limit.

Every connection costs a file descriptor, in both editions. Many systems
start a process with a soft limit of 1024 open files although the hard limit
allows far more, so a server that does not raise it runs out of descriptors
(``accept`` fails with EMFILE) long before it runs out of anything else.
Raising the soft limit up to the hard one needs no privilege; the default
``--max-connections`` is then what that limit leaves room for.
"""

from __future__ import annotations

import logging
import sys

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("hello.resources")

_FALLBACKS = (1 << 20, 65536, 10240)
"""Targets when the hard limit is unlimited, which setrlimit may refuse as a
soft limit (Linux caps it at ``fs.nr_open``, macOS at ``OPEN_MAX``)."""


def raise_open_file_limit() -> int | None:
    """Raise the soft RLIMIT_NOFILE towards the hard limit; the soft limit now.

    Never lowers it and never fails: if the system refuses, the limit stays as
    it was. Logs the figure at debug level. None when there is no limit (or
    no ``resource`` module).
    """
    if resource is None:  # pragma: no cover - not on Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if soft == unlimited:
        log.debug("Open-file limit: unlimited.")
        return None
    if hard == unlimited:
        targets = list(_FALLBACKS)
    else:
        targets = [hard]
        if sys.platform == "darwin":  # pragma: no cover - macOS caps at OPEN_MAX
            targets.append(min(hard, 10240))
    for target in targets:
        if target <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.debug(
            "Open-file limit raised from %d to %d (hard limit %s).",
            soft,
            target,
            "unlimited" if hard == unlimited else hard,
        )
        return target
    log.debug(
        "Open-file limit: %d (hard limit %s).",
        soft,
        "unlimited" if hard == unlimited else hard,
    )
    return soft


UNLIMITED_CAP = 65536
"""The default connection limit when the open-file limit is unlimited."""


def connection_cap() -> int:
    """The default ``--max-connections``: the soft open-file limit less a
    tenth (at least 64) for the rest — listener, logs, the wake-up pipes and
    epoll sets, and closes still lingering."""
    if resource is None:  # pragma: no cover - not on Windows
        return UNLIMITED_CAP
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_CAP
    return max(1, soft - max(64, soft // 10))
