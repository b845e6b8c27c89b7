"""``python -m bench throughput --peers``: the servers people would pick instead.

Each peer in ``bench/peers/`` serves our three routes with our pages; here they
are started one process each on 127.0.0.1 (a free port each), measured with
the same wrk load as our editions in the same run, and stopped by PID. A peer
whose package is not installed is skipped with a note (``pip install
'.[peers]'``). Ratios are ours over the peer, per connection mode; RSS is read
from ``/proc/PID/status`` after the load.

granian serves the same ASGI app as uvicorn from Rust's HTTP stack (hyper):
the distance from a pure-Python server to a Rust one under one app. One peer
is not Python at all: the Rust book's own server (``rust_book.rs``), built
with ``rustc -O`` into a temporary folder when rustc is on PATH — the yardstick
the threaded edition's design comes from.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import Endpoint
from bench.footprint import kib_to_mib, read_status
from bench.throughput import ThroughputRun

INSTALL_WRK = "wrk is not on PATH; install it with: apt-get install wrk"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
BUILD_TIMEOUT = 120.0
PEERS_FOLDER = Path(__file__).resolve().parent / "peers"
PAGES_FOLDER = Path(__file__).resolve().parent.parent / "common" / "pages"
_PROBE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    needs: str
    """The module that must be importable for this peer to run (for a Rust
    peer, the program that builds it)."""
    compare_with: str
    """Our edition it is the yardstick for."""
    source: str | None = None
    """A Rust file in ``bench/peers/`` built with ``rustc -O``, or None."""
    fresh_per_run: bool = False
    """Started anew for each run (workload and connection mode): the book's
    server loses a worker to every connection that closes before sending a
    line (its ``unwrap`` panics), as wrk's last connections do when a run
    ends."""

    def argv(self, port: int, program: Path | None = None) -> list[str]:
        if program is not None:  # built from ``source``
            return [str(program), str(port), str(PAGES_FOLDER)]
        python = sys.executable
        if self.name == "uvicorn":
            return [
                python, "-m", "uvicorn", "bench.peers.asgi_app:app",
                "--host", "127.0.0.1", "--port", str(port),
                "--http", "httptools", "--loop", "uvloop",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        if self.name == "granian":  # Rust's hyper under the same ASGI app
            return [
                python, "-m", "granian", "--interface", "asgi",
                "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--http", "1", "--no-ws", "--loop", "uvloop",
                "--log-level", "warning", "bench.peers.asgi_app:app",
            ]  # fmt: skip
        if self.name == "aiohttp":
            return [python, "-m", "bench.peers.aiohttp_app", str(port)]
        if self.name == "gunicorn-gthread":
            return [
                python, "-m", "gunicorn", "-k", "gthread", "-w", "1",
                "--threads", "4", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", "bench.peers.wsgi_app:app",
            ]  # fmt: skip
        return [python, "-m", "bench.peers.stdlib_server", str(port)]


PEERS = (
    Peer("uvicorn", "uvicorn", "asyncio"),
    Peer("granian", "granian", "asyncio"),
    Peer("aiohttp", "aiohttp", "asyncio"),
    Peer("gunicorn-gthread", "gunicorn", "threaded"),
    Peer("stdlib", "http.server", "threaded"),
    Peer("rust-book", "rustc", "threaded", "rust_book.rs", fresh_per_run=True),
)
RUST_BOOK_NOTE = (
    "rust-book: the book's server closes every connection after one response "
    "without a Connection: close, so wrk counts each close as a read error "
    "and its keep-alive row is a connection per request too"
)


@dataclass(frozen=True, slots=True)
class RunningPeer:
    name: str
    endpoint: Endpoint
    pid: int


def installed(peer: Peer) -> bool:
    if peer.source is not None:
        return shutil.which(peer.needs) is not None
    try:
        return importlib.util.find_spec(peer.needs) is not None
    except (ImportError, ValueError):
        return False


def build(peer: Peer, folder: Path) -> Path:
    """Compile a Rust peer into ``folder``; raises ``PeerBuildError``."""
    assert peer.source is not None
    compiler = shutil.which(peer.needs)
    if compiler is None:
        raise PeerBuildError(f"{peer.needs} is not on PATH")
    program = folder / peer.name
    command = [compiler, "-O", "--edition", "2021", "-o", str(program)]
    try:
        done = subprocess.run(
            [*command, str(PEERS_FOLDER / peer.source)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PeerBuildError(str(error)) from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        raise PeerBuildError(f"{peer.needs} failed: {first}")
    return program


class PeerBuildError(Exception):
    """A compiled peer could not be built."""


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now (a peer is told to use it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_answering(
    port: int, process: subprocess.Popen[Any], timeout: float = START_TIMEOUT
) -> bool:
    """Poll until the peer answers a ``GET /`` (bounded by ``timeout``).

    A whole request, not a bare connect: the book's server panics in a worker
    on a connection that closes before its request line, and loses the worker.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=2.0) as probe,
        ):
            probe.sendall(_PROBE)
            if probe.recv(16).startswith(b"HTTP/1.1 "):
                return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def launched(
    peer: Peer, on_event: Callable[[str], None] = lambda message: None
) -> Iterator[RunningPeer | None]:
    """Start one peer (None if it is not installed or did not start); stop it."""
    if not installed(peer):
        on_event(f"{peer.name}: not installed ({peer.needs}); skipped")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bench-peer-") as folder:
        program = None
        if peer.source is not None:
            on_event(f"{peer.name}: building {peer.source} with {peer.needs} -O")
            try:
                program = build(peer, Path(folder))
            except PeerBuildError as error:
                on_event(f"{peer.name}: cannot build it ({error}); skipped")
                yield None
                return
        with _started(peer, program, on_event) as running:
            yield running


@contextlib.contextmanager
def _started(
    peer: Peer, program: Path | None, on_event: Callable[[str], None]
) -> Iterator[RunningPeer | None]:
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        peer.argv(port, program),
        cwd=root,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not wait_answering(port, process):
            on_event(f"{peer.name}: did not start; skipped")
            yield None
        else:
            on_event(f"{peer.name}: listening on 127.0.0.1:{port}")
            yield RunningPeer(peer.name, Endpoint("127.0.0.1", port), process.pid)
    finally:
        _stop(process)


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB (Linux), or None when it cannot be read."""
    return kib_to_mib(read_status(pid).get("VmRSS"))


def ratio_table(
    runs: Sequence[ThroughputRun],
    rss: dict[str, float | None],
    idle: dict[str, float | None] | None = None,
) -> str:
    """Each peer's req/s and p99 beside the edition it is compared with; then
    the memory figures: RSS after the load, and what idle connections add."""
    rates = {(run.name, run.workload, run.mode): run for run in runs}
    workloads = list(dict.fromkeys(run.workload for run in runs))
    head = (
        f"{'peer':<17} {'workload':<8} {'connection':<10} {'peer req/s':>10} "
        f"{'ours':<9} "
        f"{'our req/s':>9} {'ratio':>6} {'peer p99':>9} {'our p99':>9} {'CPU':>6}"
    )
    lines = [
        "Ours / peer, same wrk load and workload, same run (ratio > 1: ours is faster)",
        "CPU: our server CPU per request over the peer's (< 1: ours needs less)",
        "",
        head,
        "-" * len(head),
    ]
    for peer, workload, mode in itertools.product(
        PEERS, workloads, ("keep-alive", "close")
    ):
        theirs = rates.get((peer.name, workload, mode))
        ours = rates.get((peer.compare_with, workload, mode))
        if theirs is None or ours is None:
            continue
        ratio = (
            ours.requests_per_second / theirs.requests_per_second
            if theirs.requests_per_second
            else float("inf")
        )
        lines.append(
            f"{peer.name:<17} {workload.value:<8} {mode:<10} "
            f"{theirs.requests_per_second:>10.0f} "
            f"{ours.name:<9} {ours.requests_per_second:>9.0f} {ratio:>5.2f}x "
            f"{_ms(theirs.p99):>9} {_ms(ours.p99):>9} "
            f"{_cpu_ratio(ours, theirs):>6}"
        )
    if any(run.name == "rust-book" for run in runs):
        lines += ["", RUST_BOOK_NOTE]
    if rss:
        lines += ["", "RSS after the load (VmRSS):"]
        lines += [
            f"  {name:<17} {'?' if mib is None else f'{mib:.1f} MiB'}"
            for name, mib in rss.items()
        ]
    if idle:
        lines += ["", "RSS growth with 1000 idle keep-alive connections held:"]
        lines += [
            f"  {name:<17} {'?' if mib is None else f'{mib:+.1f} MiB'}"
            for name, mib in idle.items()
        ]
    return "\n".join(lines) + "\n"


def _cpu_ratio(ours: ThroughputRun, theirs: ThroughputRun) -> str:
    """Our CPU per request over the peer's, ``-`` when either is unknown."""
    mine, peer = ours.cpu_us_per_request, theirs.cpu_us_per_request
    return "-" if mine is None or not peer else f"{mine / peer:.2f}x"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}ms"
