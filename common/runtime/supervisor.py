"""``--processes N``: one listening socket, N server processes, one supervisor.

One Python process runs Python code on one core at a time (the GIL), so
neither the thread pool nor the event loop can use a second core. With
``--processes N`` (N > 1) each edition's ``__main__`` hands over to
:func:`supervise`, the same for both:

* the **parent** binds and listens once, logs the start-up line once with the
  real port (``Listening on http://127.0.0.1:PORT (threaded, 4 workers,
  2 processes)``), then forks N **children**, each a complete server of its
  edition (its own pool or event loop) accepting from that one socket;
* a child that dies is logged and replaced. One that dies within
  :data:`MIN_UPTIME` of its start, again and again (a crash loop), is
  restarted after a pause that doubles from 0.1 s to 10 s — never in a tight
  loop. A child that exits 0 on its own has served its ``--max-requests``
  (counted per child) and is replaced at once, the way gunicorn recycles
  workers;
* SIGINT or SIGTERM to the parent is passed on to every child as SIGTERM,
  and each shuts down with the promise of a single process (every request
  received is answered, with ``Connection: close``); the parent exits 0 once
  all have. A second signal is passed on too, and the children then exit at
  once. Always SIGTERM, because a child whose own handlers are not installed
  (still starting, or already past its graceful stop) then simply dies of it,
  and ``killed by SIGTERM`` tells the parent that nothing was in flight,
  while a child that aborted requests exits with status 143.

* SIGHUP to the parent reloads: N fresh children start, then the running
  ones get SIGTERM and drain as above (:meth:`Supervisor._reload`). The
  fresh ones are exec'd, not forked, so they run the code on disk now.

Why one inherited socket, not ``SO_REUSEPORT``
----------------------------------------------
With ``SO_REUSEPORT`` each child would bind a socket of its own and the
kernel would spread new connections over them by a hash. That balances
better under load, but every socket has its own accept queue: when a child
stops (a shutdown, a ``--max-requests`` recycle, a crash) the connections
waiting in *its* queue are reset — lost, though the client did nothing wrong.
And with ``--port 0`` each child would get a different port. One socket,
bound by the parent and inherited, has one queue that outlives every child:
while the parent lives a connection waits until some child accepts it, so a
restart or a recycle loses nothing, and the port is the one the parent
printed (a client may connect before any child is up). The price: the
children compete for each new connection (all are woken, the first to call
``accept`` wins), so the spread is less even; ``python -m bench throughput
--processes 1,2`` shows what that costs.

Why ``fork``, and its rules
---------------------------
A forked child starts with the parent's imports and the socket already in
place, so a restart takes milliseconds. Fork is only safe before any thread
or event loop exists, so the parent never starts either: it waits with
``select`` on a socket pair that ``signal.set_wakeup_fd`` writes to, reaps
with ``waitpid``, and each child builds its pool or loop after the fork.
Signals are blocked across the fork, so a child never runs the parent's
handlers. Each child gets a process group of its own, so a Ctrl-C in the
terminal reaches the parent only (which passes it on once: a terminal signal
to every process, plus the parent's, would be each child's second signal),
and on Linux asks for SIGTERM when the parent dies (``PR_SET_PDEATHSIG``), so
a parent killed with SIGKILL leaves no server behind.

This module and its neighbours in ``common.runtime`` are where ``common/``
touches processes, signals and sockets; the protocol core stays sans-I/O.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from common.runtime.affinity import keep_to_one_cpu
from common.runtime.cli import Options
from common.runtime.listener import handed_over, listen, shown_host
from common.runtime.logs import configure_logging, listening_message, url
from common.runtime.signals import STOP_SIGNALS, StopPolicy
from common.runtime.signals import name as signal_name

logger = logging.getLogger("hello.supervisor")

Target = Callable[[socket.socket], int]
"""What a child runs: serve on the inherited listening socket, return a status."""

MIN_UPTIME = 1.0
"""A child that dies sooner than this after its start counts towards a crash loop."""
BACKOFF_FIRST = 0.1
"""Pause before restarting after the first quick crash (seconds); it doubles."""
BACKOFF_MAX = 10.0
"""The longest pause between restarts of a crash-looping child (seconds)."""
KILL_GRACE = 5.0
"""Seconds beyond ``--shutdown-timeout`` before a child still running gets SIGKILL."""

_STOP_SIGNALS = STOP_SIGNALS
_RELOAD = signal.SIGHUP
_HANDLED = (*_STOP_SIGNALS, _RELOAD, signal.SIGCHLD)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_Handler = Callable[[int, FrameType | None], Any] | int | None


def backoff(failures: int) -> float:
    """Seconds to wait before a restart, after ``failures`` quick crashes in a row."""
    if failures <= 0:
        return 0.0
    return float(min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 30)))


def describe(code: int) -> str:
    """``exit status 1`` or ``killed by SIGKILL``, from a ``waitstatus_to_exitcode``."""
    if code >= 0:
        return f"exit status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def _exit_status(code: int) -> int:
    """The shell's convention: 128 + N for a process killed by signal N."""
    return code if code >= 0 else 128 - code


@dataclass(slots=True)
class _Child:
    pid: int
    slot: int
    started: float


class Supervisor:
    """The parent of ``--processes N``: see the module's docstring.

    :meth:`run` forks, so it must be called before this process starts any
    thread or event loop; it raises ``RuntimeError`` otherwise.
    """

    def __init__(self, options: Options, target: Target, details: str) -> None:
        self.options = options
        self._target = target
        self._details = details
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._children: dict[int, _Child] = {}
        self._due: dict[int, float] = {}
        """Slots waiting for a (re)start, and when (``time.monotonic()``)."""
        self._failures = [0] * options.processes
        """Per slot: quick crashes in a row, for the back-off."""
        self._received: list[int] = []
        """Stop signals the handler recorded and the loop has not acted on yet."""
        self._stop_policy = StopPolicy(self._begin_stop, self._stop_at_once)
        self._kill_at = math.inf
        self._status = 0
        self._parent = os.getpid()
        self._draining: set[int] = set()
        """Children told to stop by a reload: not replaced when they exit."""
        self._fresh = False
        """After a reload, children run the program anew (exec), not a fork's copy."""

    # -- the parent ----------------------------------------------------------------

    def run(self) -> int:
        """Listen, start the children, supervise them until stopped; the exit status."""
        if threading.active_count() > 1:
            raise RuntimeError("--processes: the supervisor must fork before threads")
        options = self.options
        inherited = handed_over(options.fd)  # --fd, systemd; else our own
        try:
            self._listener = inherited or listen(options.host, options.port)
        except OSError as error:
            where = url(options.host, options.port)
            print(f"error: cannot listen on {where}: {error}", file=sys.stderr)
            return 1
        port = int(self._listener.getsockname()[1])
        host = shown_host(options.host, inherited)
        details = f"{self._details}, {options.processes} processes"
        logger.info("%s", listening_message(options, port, details, host))
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        previous: dict[int, _Handler] = {}
        old_wakeup = signal.set_wakeup_fd(
            self._wake_w.fileno(), warn_on_full_buffer=False
        )
        try:
            for signum in (*_STOP_SIGNALS, _RELOAD):
                previous[signum] = signal.signal(signum, self._on_signal)
            # A Python-level handler (not SIG_IGN, which would reap for us) so
            # that the C handler writes to the wake-up socket.
            previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _ignore)
            for slot in range(options.processes):
                self._start(slot)
            self._supervise()
        finally:
            for number, handler in previous.items():
                if handler is not None:
                    signal.signal(number, handler)
            signal.set_wakeup_fd(old_wakeup)
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
        logger.info("All child processes have exited.")
        return self._status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record it: the loop acts on it (a handler may interrupt anything).
        self._received.append(signum)

    def _supervise(self) -> None:
        while self._children or self._due:
            self._wait()
            while self._received:
                signum = self._received.pop(0)
                if signum == _RELOAD:
                    self._reload()
                else:
                    self._stop(signum)
            self._reap()
            now = time.monotonic()
            if now >= self._kill_at:
                self._kill_stragglers()
            for slot, when in list(self._due.items()):
                if when <= now:
                    del self._due[slot]
                    self._start(slot)

    def _wait(self) -> None:
        """Sleep until a signal (SIGCHLD included) or the next timed event."""
        deadline = min([*self._due.values(), self._kill_at])
        timeout = None
        if deadline != math.inf:
            timeout = max(0.0, deadline - time.monotonic())
        assert self._wake_r is not None
        select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(OSError):
            while self._wake_r.recv(512):
                pass

    def _start(self, slot: int) -> None:
        """Fork the child for ``slot``; on failure, try again after a back-off."""
        for stream in (sys.stdout, sys.stderr):  # or the child would repeat it
            with contextlib.suppress(Exception):
                stream.flush()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
        except OSError as error:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._failures[slot] += 1
            delay = backoff(self._failures[slot])
            logger.error("Cannot fork a child: %s; again in %.1f s", error, delay)
            self._due[slot] = time.monotonic() + delay
            return
        if pid == 0:
            if self.options.one_cpu:  # each child on a CPU of its own
                keep_to_one_cpu(slot)
            if self._fresh:
                self._exec_child(mask)
            self._child(mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._children[pid] = _Child(pid, slot, time.monotonic())
        logger.info("Child process %d started.", pid)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self._children.pop(pid, None)
            if child is not None:
                self._exited(child, os.waitstatus_to_exitcode(status))

    def _exited(self, child: _Child, code: int) -> None:
        """A child has gone: account for it during a shutdown, else replace it."""
        now = time.monotonic()
        pid, slot = child.pid, child.slot
        if pid in self._draining:  # told to stop by a reload: not replaced
            self._draining.discard(pid)
            logger.info("Child process %d drained (%s).", pid, describe(code))
            return
        if self._stop_policy.received:
            # Killed by our SIGTERM: its handlers were not installed (still
            # starting, or already stopped), so it had nothing in flight.
            if code in (0, -signal.SIGTERM):
                logger.debug("Child process %d stopped (%s).", pid, describe(code))
            else:
                logger.warning("Child process %d stopped: %s.", pid, describe(code))
                self._status = self._status or _exit_status(code)
            return
        if code == 0:
            self._failures[slot] = 0
            budget = self.options.max_requests
            why = f" after --max-requests {budget}" if budget is not None else ""
            logger.info("Child process %d finished%s; replacing it.", pid, why)
            self._due[slot] = now
            return
        uptime = now - child.started
        self._failures[slot] = self._failures[slot] + 1 if uptime < MIN_UPTIME else 0
        delay = backoff(self._failures[slot])
        logger.warning(
            "Child process %d died (%s) after %.1f s; restarting it%s.",
            pid,
            describe(code),
            uptime,
            f" in {delay:.1f} s" if delay else "",
        )
        self._due[slot] = now + delay

    def _reload(self) -> None:
        """SIGHUP, gunicorn's reload: start a fresh set of children running the
        program as it is on disk now (exec'd, not forked: a fork would copy
        the code this parent loaded at its start), then stop the running ones
        gracefully. All share the one listening socket, so a connection
        waiting in its queue is taken by whichever accepts first and none is
        refused; each old child answers what it has received, closes its idle
        connections and exits."""
        if self._stop_policy.received:
            return  # shutting down: nothing to reload
        running = [pid for pid in self._children if pid not in self._draining]
        logger.info(
            "%s: starting %d fresh child processes; %d draining.",
            signal_name(_RELOAD),
            self.options.processes,
            len(running),
        )
        self._fresh = True
        self._due.clear()  # restarts still due are replaced by the fresh set
        for slot in range(self.options.processes):
            self._failures[slot] = 0
            self._start(slot)
        for pid in running:
            self._draining.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _stop(self, signum: int) -> None:
        """Pass a stop signal on to every child; the first one starts the shutdown."""
        self._stop_policy(signum)
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _begin_stop(self, signum: int) -> None:
        logger.info(
            "%s: shutting down %d child processes.",
            signal_name(signum),
            len(self._children),
        )
        self._due.clear()
        # The children keep their own copies until each has stopped
        # accepting; the parent's would keep the port open after them.
        if self._listener is not None:
            self._listener.close()
        self._kill_at = time.monotonic() + self.options.shutdown_timeout + KILL_GRACE

    def _stop_at_once(self, signum: int) -> None:
        # The children get this second signal too, and exit at once.
        logger.warning("%s again: child processes exit at once.", signal_name(signum))
        self._status = 128 + signum

    def _kill_stragglers(self) -> None:
        self._kill_at = math.inf
        if not self._children:
            return
        logger.warning(
            "Child processes %s still running %.1f s after the signal; killing them.",
            ", ".join(map(str, self._children)),
            self.options.shutdown_timeout + KILL_GRACE,
        )
        for pid in self._children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # -- the child -------------------------------------------------------------------

    def _child(self, mask: set[int]) -> NoReturn:
        """Run in a new child: serve, then leave with ``os._exit`` (no parent code)."""
        status = 1
        try:
            status = self._child_main(mask)
        except KeyboardInterrupt:
            status = 128 + int(signal.SIGINT)
        except SystemExit as leaving:
            code = leaving.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
        except BaseException:
            logger.exception("Child process %d failed.", os.getpid())
        finally:
            for handler in logging.getLogger().handlers:
                with contextlib.suppress(Exception):
                    handler.flush()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)

    def _exec_child(self, mask: set[int]) -> NoReturn:
        """Run in a new child after a reload: become the program anew, one
        server (``--processes 1``) on the inherited socket (``--fd``)."""
        try:
            self._leave_parent_state()
            if not _die_with_parent(self._parent):  # survives the exec
                os._exit(0)
            assert self._listener is not None
            fd = self._listener.fileno()
            os.set_inheritable(fd, True)
            # The interpreter's own options, the module or script, the flags;
            # the last of a repeated flag wins.
            argv = [sys.executable, *sys.orig_argv[1:]]
            argv += ["--processes", "1", "--fd", str(fd)]
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.execv(sys.executable, argv)
        except BaseException:
            logger.exception("Child process %d could not start anew.", os.getpid())
        os._exit(1)

    def _leave_parent_state(self) -> None:
        """In a new child: undo the parent's signal set-up, drop its wake-up
        socket, take a process group of its own."""
        signal.set_wakeup_fd(-1)
        for signum in _HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        os.setpgid(0, 0)

    def _child_main(self, mask: set[int]) -> int:
        # Undo the parent's signal set-up before unblocking: the shell
        # installs its own SIGINT/SIGTERM handlers when it starts serving.
        # SIG_DFL until then: a signal before the server is up ends the child
        # (nothing is in flight yet), and the parent recognises the death.
        self._leave_parent_state()
        if not _die_with_parent(self._parent):
            return 0  # the parent is gone already: serve nobody
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        assert self._listener is not None
        return self._target(self._listener)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD: the wake-up socket does the work."""


def _die_with_parent(parent: int) -> bool:
    """Ask Linux for SIGTERM when the parent dies; False if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    return os.getppid() == parent


def supervise(options: Options, target: Target, details: str) -> int:
    """Serve with ``options.processes`` children running ``target``; the exit status.

    ``details`` goes into the start-up line, before the process count, e.g.
    ``4 workers`` or ``uvloop``. Logging gets ``[PID]`` on every line.
    """
    configure_logging(options.log_level, pids=True)
    return Supervisor(options, target, details).run()
