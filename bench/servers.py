"""Starting the two editions for a bench run, and always stopping them.

Each edition runs as ``python -m MODULE --port 0 ...`` under this interpreter;
the real port comes from its ``Listening on http://HOST:PORT (...)`` line, so
nothing waits a fixed time. The servers get a session of their own: a Ctrl-C
in the terminal then reaches only the bench, which stops them with SIGTERM by
PID (their graceful shutdown) and, if one has not exited within the grace
period, with SIGKILL.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.client import Endpoint
from bench.model import ASYNCIO, SPAWN, THREADED
from common.runtime.cli import EDITION_MODULES
from common.runtime.logs import LISTENING

MODULES = {
    THREADED: EDITION_MODULES[THREADED],
    SPAWN: EDITION_MODULES[THREADED],  # with --spawn
    ASYNCIO: EDITION_MODULES[ASYNCIO],
}
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_TAIL_LINES = 20


class ServerError(RuntimeError):
    """A server did not start; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """What both editions are started with: the same settings for both."""

    sleep_seconds: float
    workers: int
    shutdown_timeout: float = 5.0
    processes: int = 1
    """``--processes``: server processes behind one port (1: no supervisor)."""

    def argv(self, edition: str) -> list[str]:
        module = MODULES[edition]
        args = [
            sys.executable,
            "-m",
            module,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--sleep-seconds",
            repr(self.sleep_seconds),
            "--no-access-log",
            "--shutdown-timeout",
            repr(self.shutdown_timeout),
        ]
        if edition == THREADED:
            args += ["--workers", str(self.workers)]
        elif edition == SPAWN:
            args.append("--spawn")
        if self.processes > 1:
            args += ["--processes", str(self.processes)]
        return args


@dataclass(slots=True)
class LaunchedServer:
    """A server subprocess, its address once known, and its recent log lines."""

    edition: str
    process: subprocess.Popen[str]
    endpoint: Endpoint | None = None
    details: str = ""
    """What the start-up line says in brackets, e.g. ``threaded, 4 workers``."""
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=_TAIL_LINES)
    )
    listening: threading.Event = field(default_factory=threading.Event)
    processes: int = 1
    """With ``--processes N`` the parent and then each child log a Listening
    line (one port): all N + 1 mean every child accepts."""
    listeners: int = 0
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    def drain(self) -> None:
        """Read stderr to the end (in a thread), so the pipe never fills.

        The first ``Listening`` line sets the address and wakes the starter.
        """
        stream = self.process.stderr
        if stream is None:
            return
        for raw in stream:
            line = raw.rstrip("\n")
            self.tail.append(line)
            if not self.ready.is_set() and (match := LISTENING.search(line)):
                if not self.listening.is_set():
                    self.endpoint = Endpoint(match.group(1), int(match.group(2)))
                    self.details = match.group(3)
                    self.listening.set()
                self.listeners += 1
                if self.listeners >= (1 if self.processes == 1 else self.processes + 1):
                    self.ready.set()
        self.listening.set()  # EOF: the process is gone; wake the starter
        self.ready.set()

    def last_words(self) -> str:
        """The last log line, for a one-line error message."""
        lines = [line for line in self.tail if line.strip()]
        return lines[-1].strip() if lines else "(no output)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM by PID, wait, SIGKILL if need be; the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait()


def _environment() -> dict[str, str]:
    """Our environment, with the directory that holds ``bench`` on the path.

    Run from a checkout, ``python -m threaded`` must find the editions next to
    this package whatever the current directory is; installed, the directory
    is site-packages and adding it changes nothing.
    """
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return dict(
        os.environ,
        PYTHONPATH=root + (os.pathsep + path if path else ""),
        PYTHONUNBUFFERED="1",
    )


def _spawn(edition: str, settings: ServerSettings) -> LaunchedServer:
    process = subprocess.Popen(
        settings.argv(edition),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=_environment(),
        start_new_session=True,
    )
    server = LaunchedServer(edition, process, processes=settings.processes)
    threading.Thread(
        target=server.drain, name=f"bench-{edition}-log", daemon=True
    ).start()
    return server


@contextlib.contextmanager
def launched(
    editions: Sequence[str],
    settings: ServerSettings,
    *,
    on_event: Callable[[str], None] = lambda message: None,
    timeout: float = START_TIMEOUT,
) -> Iterator[dict[str, LaunchedServer]]:
    """Start every edition at once, yield them by name, stop them all on exit.

    Stopping happens on any exit — success, an exception, KeyboardInterrupt —
    because it sits in the ExitStack's callbacks, registered the moment each
    process exists.
    """
    servers: dict[str, LaunchedServer] = {}
    with contextlib.ExitStack() as stack:

        def stop(server: LaunchedServer) -> None:
            status = server.stop()
            on_event(f"stopped {server.edition} (pid {server.pid}, exit {status})")

        for edition in editions:
            on_event(f"starting {edition}: {' '.join(settings.argv(edition)[1:])}")
            server = _spawn(edition, settings)
            stack.callback(stop, server)
            servers[edition] = server
        for server in servers.values():
            if not server.listening.wait(timeout) or server.endpoint is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.process.wait(1)  # its stderr closed: it is exiting
                code = server.process.poll()
                why = "did not start" if code is None else f"exited with status {code}"
                raise ServerError(
                    f"{server.edition} {why}: {server.last_words()}"
                    if server.tail
                    else f"{server.edition} {why} within {timeout:g} s (no output)"
                )
            # A connection made before every child is up would all go to the
            # first one (wrk opens its keep-alive connections at once).
            if not server.ready.wait(timeout):
                raise ServerError(
                    f"{server.edition}: only {server.listeners - 1} of "
                    f"{server.processes} processes listening within {timeout:g} s"
                )
            on_event(
                f"{server.edition} listening on {server.endpoint.url} "
                f"({server.details}, pid {server.pid})"
            )
        yield servers
