"""Test helpers: start a real server on --port 0, and a tiny raw-socket client.

Servers run as subprocesses of this interpreter. We learn the real port from
the ``Listening on http://HOST:PORT (...)`` line instead of sleeping, and every
server started here is ended by PID in the fixture's teardown, pass or fail.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from common.runtime.cli import EDITION_MODULES
from common.runtime.logs import LISTENING

MODULES = EDITION_MODULES
EDITIONS = tuple(MODULES)
SPAWN = "spawn"
"""``threaded --spawn`` among the shared servers: a design, not an edition."""
DESIGNS = (*EDITIONS, SPAWN)
START_TIMEOUT = 15.0


@dataclass
class RunningServer:
    """A server subprocess and everything it has logged so far."""

    edition: str
    process: subprocess.Popen[str]
    host: str = "127.0.0.1"
    port: int = 0
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    output_complete: bool = False
    """stderr has reached its end: every line the server wrote is in ``lines``."""

    def _pump(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.output_complete = True
            self._changed.notify_all()

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Block until a log line matches ``pattern``; fail after ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self.lines)
                left = deadline - time.monotonic()
                # Exited, and its last lines read too (they may still be in
                # the pipe when the exit is seen).
                if left <= 0 or (self.output_complete and seen == len(self.lines)):
                    raise AssertionError(
                        f"no log line matching {pattern!r}; log:\n" + self.log()
                    )
                self._changed.wait(min(left, 0.1))

    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit; return its status."""
        return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def start_server(edition: str, *args: str, cwd: str | None = None) -> RunningServer:
    """Start ``python -m <edition> --port 0 ARGS`` and wait for its port."""
    command = [sys.executable, "-m", MODULES[edition], "--port", "0", *args]
    return launch(edition, command, cwd=cwd)


def launch(
    edition: str,
    command: list[str],
    *,
    cwd: str | None = None,
    stdin: int = subprocess.DEVNULL,
    pass_fds: tuple[int, ...] = (),
) -> RunningServer:
    """Start ``command`` (a server that logs its port) and wait for its port."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command,
        pass_fds=pass_fds,
        stdin=stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    server = RunningServer(edition=edition, process=process)
    threading.Thread(target=server._pump, daemon=True).start()
    try:
        match = server.wait_for_log(LISTENING.pattern, START_TIMEOUT)
    except AssertionError:
        server.kill()
        raise
    server.host, server.port = match.group(1), int(match.group(2))
    return server


# -- a raw-socket client --------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One parsed response; ``raw`` is every byte of it."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def matching_lines(server: RunningServer, pattern: str) -> list[re.Match[str]]:
    """Every line of the server's log that ``pattern`` matches, as matches."""
    regex = re.compile(pattern)
    return [m for line in server.log().splitlines() if (m := regex.search(line))]


def count_lines(server: RunningServer, pattern: str) -> int:
    return len(matching_lines(server, pattern))


def wait_for_count(
    server: RunningServer, pattern: str, count: int, timeout: float = 10.0
) -> list[re.Match[str]]:
    """Poll the log until ``pattern`` has matched ``count`` lines; the matches.

    Bounded in time, and over at once if the server has exited short of them.
    """
    deadline = time.monotonic() + timeout
    while True:
        exited = server.output_complete  # and every line it wrote is read
        matches = matching_lines(server, pattern)
        if len(matches) >= count:
            return matches
        if exited or time.monotonic() > deadline:
            raise AssertionError(f"< {count} x {pattern!r}:\n{server.log()}")
        time.sleep(0.01)


def open_descriptors(server: RunningServer) -> int:
    """How many file descriptors the server process has open (Linux)."""
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def wait_until(
    condition: Callable[[], bool], what: Callable[[], str], timeout: float = 10.0
) -> None:
    """Poll ``condition`` until it holds; fail with ``what()`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what())
        time.sleep(0.05)


def only_line(stderr: str) -> str:
    """The one line a command's error printed (asserted to be one line)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def free_port() -> int:
    """A loopback port that was free a moment ago (bound to 0, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def pipeline_without_reading(port: int) -> socket.socket:
    """A client that sends ~700 kB of pipelined GETs (as far as the server
    takes them, for 5 s at most) and reads none of the answers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    data = memoryview(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" * 20_000)
    deadline = time.monotonic() + 5.0
    while data and time.monotonic() < deadline:
        try:
            data = data[sock.send(data) :]
        except BlockingIOError:  # the server has stopped reading us
            if not select.select([], [sock], [], 0.2)[1]:
                break
    return sock


def parse_head(head_bytes: bytes) -> tuple[int, str, dict[str, str]]:
    """Status, reason and headers (names lower-cased) of a response head
    without its final blank line."""
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    _, status, reason = status_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), reason, headers


class ResponseReader:
    """Reads responses one by one from a socket, keeping any extra bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def read(self, *, head: bool = False) -> Response:
        """The next response; ``head`` when it answers a HEAD (no body)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a full head: {self.buffer!r}")
        head_bytes, _, rest = self.buffer.partition(b"\r\n\r\n")
        status, reason, headers = parse_head(head_bytes)
        length = 0 if head else int(headers.get("content-length", "0"))
        self.buffer = rest
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("closed before the full body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        raw = head_bytes + b"\r\n\r\n" + body
        return Response(status, reason, headers, body, raw)

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True when the server closes with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            return not self.buffer and not self._fill()
        except ConnectionResetError:
            return not self.buffer


def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: str = "Host: localhost\r\n",
    host: str = "127.0.0.1",
    timeout: float = 10.0,
) -> Response:
    """One request on a fresh connection."""
    with connect(port, host, timeout) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\n{headers}\r\n".encode())
        return ResponseReader(sock).read(head=method == "HEAD")


def read_until_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def iter_statuses(raw: bytes) -> Iterator[int]:
    """The status codes of every response in a byte stream."""
    for match in re.finditer(rb"HTTP/1\.1 (\d{3}) ", raw):
        yield int(match.group(1))


def exchange_raw(
    port: int, data: bytes, timeout: float = 10.0, *, half_close: bool = True
) -> bytes:
    """Send ``data``, half-close, and return all the server sent before closing.

    The half-close tells the server nothing more is coming, so it answers
    what it has and closes; a send cut short by an early close still reads
    whatever answer the server managed to send. Without ``half_close`` (for
    ``/sleep``, whose client must not seem to leave), ``data`` itself must
    end the connection (``Connection: close``).
    """
    with connect(port, timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(sock)


def without_date(raw: bytes) -> bytes:
    """The response bytes with every ``Date`` value blanked out."""
    return re.sub(rb"\r\nDate: [^\r]*\r\n", b"\r\nDate: -\r\n", raw)


def thread_cpus(pid: int) -> list[set[int]]:
    """The CPUs each thread of ``pid`` may run on (what ``taskset -p`` shows)."""
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


def sleep_started(edition: str) -> str:
    """The debug line each edition logs once a ``/sleep`` request is under way
    (not the pool's "got a job": the threaded edition's watch is a job too)."""
    if edition == "asyncio":
        return r"'GET /sleep HTTP/1\.1' sleeps"
    return r"worker-\d+ sleeps [\d.]+ s for "
