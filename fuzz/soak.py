"""Soak test: minutes of mixed load on each edition, watching RSS and descriptors.

Not part of the test suite (it takes ~10 minutes per edition)::

    python fuzz/soak.py                      # 10 minutes on each edition
    python fuzz/soak.py --minutes 1 --editions asyncio --json /tmp/soak.json

For each edition it starts ``python -m EDITION --port 0`` on 127.0.0.1,
runs a paced mix of well-behaved and hostile clients against it from a few
threads (keep-alive runs, fresh connections, ``/sleep``, 404, HEAD,
pipelining, slow heads, malformed requests, resets mid-request and
mid-``/sleep``, idle connections left to time out), and samples the
server's RSS, open descriptors and threads from ``/proc`` every few
seconds. At the end it stops the load, waits for the descriptors to come
back to their baseline, sends SIGTERM and expects exit status 0.

The report gives, per edition: requests and errors by kind, RSS at the end
of the warm-up, at the end and its least-squares slope after the warm-up,
and descriptors and threads at the start, at their peak and after the load.
The exit status is 0 only when every edition had no errors, no RSS growth
trend and no leaked descriptor. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.runtime.cli import EDITION_MODULES
from common.runtime.logs import LISTENING

ROOT = Path(__file__).resolve().parent.parent
MODULES = EDITION_MODULES
GET = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
TIMEOUT = 10.0
"""Client socket timeout: any reply slower than this is counted as a hang."""
KEEP_ALIVE = 1.0
"""--keep-alive-timeout of the soaked servers, so idle expiry happens often."""
SLEEP = 0.05
"""--sleep-seconds of the soaked servers."""
MiB = 1024 * 1024


class Failure(Exception):
    """An answer that is not what the server must say."""


# -- a small raw-socket client --------------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads framed responses from a socket (Content-Length bodies only)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise Failure(f"closed after {len(self.buffer)} bytes of a response")
        self.buffer += data

    def status(self, *, head: bool = False) -> int:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head_bytes, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if head:
            length = 0
        while len(rest) < length:
            self.buffer = head_bytes + b"\r\n\r\n" + rest
            self._fill()
            rest = self.buffer.partition(b"\r\n\r\n")[2]
        self.buffer = rest[length:]
        return status

    def eof(self) -> bool:
        try:
            return not self.buffer and not self.sock.recv(1)
        except ConnectionResetError:
            return not self.buffer


def expect(got: int, wanted: int, what: str) -> None:
    if got != wanted:
        raise Failure(f"{what}: status {got}, expected {wanted}")


def reset(sock: socket.socket) -> None:
    """Close with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- the operations of the mix: each returns how many requests it made -----------


def op_keep_alive(port: int, rng: random.Random) -> int:
    count = rng.randint(5, 30)
    with connect(port) as sock:
        reader = Reader(sock)
        for _ in range(count):
            sock.sendall(GET % b"/")
            expect(reader.status(), 200, "keep-alive GET /")
    return count


def op_fresh(port: int, rng: random.Random) -> int:
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reader = Reader(sock)
        expect(reader.status(), 200, "GET / (close)")
        if not reader.eof():
            raise Failure("no close after Connection: close")
    return 1


def op_sleep(port: int, rng: random.Random) -> int:
    with connect(port) as sock:
        sock.sendall(GET % b"/sleep")
        expect(Reader(sock).status(), 200, "GET /sleep")
    return 1


def op_not_found(port: int, rng: random.Random) -> int:
    with connect(port) as sock:
        sock.sendall(GET % b"/nope")
        expect(Reader(sock).status(), 404, "GET /nope")
    return 1


def op_head(port: int, rng: random.Random) -> int:
    with connect(port) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(Reader(sock).status(head=True), 200, "HEAD /")
    return 1


def op_pipeline(port: int, rng: random.Random) -> int:
    count = rng.randint(2, 16)
    with connect(port) as sock:
        sock.sendall((GET % b"/") * count + GET % b"/nope")
        reader = Reader(sock)
        for _ in range(count):
            expect(reader.status(), 200, "pipelined GET /")
        expect(reader.status(), 404, "pipelined GET /nope")
    return count + 1


def op_slow_head(port: int, rng: random.Random) -> int:
    data = GET % b"/"
    with connect(port) as sock:
        for start in range(0, len(data), 12):
            sock.sendall(data[start : start + 12])
            time.sleep(0.01)
        expect(Reader(sock).status(), 200, "slow GET /")
    return 1


def op_bad(port: int, rng: random.Random) -> int:
    junk = rng.choice(
        [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",  # no Host
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            bytes(rng.getrandbits(8) for _ in range(64)) + b"\r\n\r\n",
        ]
    )
    with connect(port) as sock:
        sock.sendall(junk)
        reader = Reader(sock)
        status = reader.status()
        if not 400 <= status < 600:
            raise Failure(f"malformed request answered {status}")
        if not reader.eof():
            raise Failure("no close after an error response")
    return 1


def op_reset_mid_request(port: int, rng: random.Random) -> int:
    sock = connect(port)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: loc")
    reset(sock)
    return 0


def op_reset_mid_sleep(port: int, rng: random.Random) -> int:
    sock = connect(port)
    sock.sendall(GET % b"/sleep")
    time.sleep(SLEEP / 2)
    reset(sock)
    return 0


def op_idle(port: int, rng: random.Random) -> int:
    """Connect, say nothing, and expect the keep-alive deadline to close us."""
    with connect(port) as sock:
        started = time.monotonic()
        if not Reader(sock).eof():
            raise Failure("bytes sent to a silent client")
        if time.monotonic() - started > KEEP_ALIVE + 5.0:
            raise Failure("idle connection outlived its keep-alive timeout")
    return 0


Operation = Callable[[int, random.Random], int]
MIX: list[tuple[Operation, int]] = [
    (op_keep_alive, 20),
    (op_fresh, 20),
    (op_sleep, 10),
    (op_not_found, 8),
    (op_head, 8),
    (op_pipeline, 10),
    (op_slow_head, 5),
    (op_bad, 8),
    (op_reset_mid_request, 4),
    (op_reset_mid_sleep, 4),
    (op_idle, 1),
]


# -- one edition ------------------------------------------------------------------


@dataclass
class Sample:
    elapsed: float
    rss_kib: int
    fds: int
    threads: int


@dataclass
class EditionResult:
    edition: str
    seconds: float = 0.0
    operations: int = 0
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    fds_after: int = -1
    threads_after: int = -1
    exit_status: int | None = None
    log_problems: list[str] = field(default_factory=list)

    def error_count(self) -> int:
        return sum(self.errors.values())


def proc_sample(pid: int, started: float) -> Sample:
    rss = 0
    threads = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return Sample(time.monotonic() - started, rss, fds, threads)


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    if len(points) < 3:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    return statistics.linear_regression(xs, ys).slope * 60.0


class Server:
    def __init__(self, edition: str, log_path: Path) -> None:
        command = [
            sys.executable,
            "-m",
            MODULES[edition],
            "--port",
            "0",
            "--no-access-log",
            "--sleep-seconds",
            str(SLEEP),
            "--keep-alive-timeout",
            str(KEEP_ALIVE),
            "--header-timeout",
            "5",
        ]
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            if match := LISTENING.search(self.log_path.read_text()):
                return int(match.group(2))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"no start-up line:\n{self.log_path.read_text()}")

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def sample_until(
    server: Server, result: EditionResult, started: float, seconds: float, every: float
) -> None:
    """Sample the server every ``every`` seconds until the run is over."""
    pid = server.process.pid
    next_report = started + 60.0
    while (now := time.monotonic()) < started + seconds:
        time.sleep(min(every, started + seconds - now))
        if server.process.poll() is not None:
            result.errors["server exited"] += 1
            return
        result.samples.append(proc_sample(pid, started))
        if time.monotonic() >= next_report:
            next_report += 60.0
            last = result.samples[-1]
            print(
                f"  {result.edition}: {last.elapsed:5.0f} s  {result.requests}"
                f" requests  {result.error_count()} errors  RSS"
                f" {last.rss_kib / 1024:.1f} MiB  fds {last.fds}  threads"
                f" {last.threads}",
                flush=True,
            )


def settle(pid: int, baseline: Sample, started: float) -> Sample:
    """After the load: wait (bounded) for descriptors and threads to come back.

    Idle connections close within the keep-alive timeout.
    """
    deadline = time.monotonic() + KEEP_ALIVE + 10.0
    while True:
        after = proc_sample(pid, started)
        settled = after.fds <= baseline.fds and after.threads <= baseline.threads
        if settled or time.monotonic() > deadline:
            return after
        time.sleep(0.2)


def soak(edition: str, seconds: float, args: argparse.Namespace) -> EditionResult:
    result = EditionResult(edition)
    log_path = Path(args.log_dir) / f"soak-{edition}.log"
    server = Server(edition, log_path)
    pid = server.process.pid
    stop = threading.Event()
    lock = threading.Lock()
    operations, weights = zip(*MIX, strict=True)
    pause = args.clients / args.rate  # seconds between one thread's operations

    def client(number: int) -> None:
        rng = random.Random(args.seed * 1000 + number)
        while not stop.is_set():
            operation = rng.choices(operations, weights)[0]
            try:
                made = operation(server.port, rng)
            except (Failure, OSError) as error:
                made = 0
                kind = f"{operation.__name__}: {type(error).__name__}"
                with lock:
                    result.errors[kind] += 1
                    if len(result.first_errors) < 20:
                        result.first_errors.append(f"{kind}: {error}")
            with lock:
                result.operations += 1
                result.requests += made
            stop.wait(rng.uniform(0.5, 1.5) * pause)

    started = time.monotonic()
    baseline = proc_sample(pid, started)
    result.samples.append(baseline)
    threads = [
        threading.Thread(target=client, args=(n,), daemon=True)
        for n in range(args.clients)
    ]
    try:
        for thread in threads:
            thread.start()
        sample_until(server, result, started, seconds, args.interval)
    finally:
        stop.set()
        for thread in threads:
            thread.join(TIMEOUT + 5.0)
        result.seconds = time.monotonic() - started
    if server.process.poll() is None:
        after = settle(pid, baseline, started)
        result.fds_after, result.threads_after = after.fds, after.threads
    result.exit_status = server.stop()
    for line in log_path.read_text().splitlines():
        if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback", line):
            result.log_problems.append(line)
    return result


# -- the report -------------------------------------------------------------------


def summarise(result: EditionResult, warm_up: float) -> dict[str, Any]:
    samples = result.samples
    steady = [s for s in samples if s.elapsed >= warm_up] or samples
    rss_slope = slope_per_minute([(s.elapsed, s.rss_kib / 1024) for s in steady])
    fd_slope = slope_per_minute([(s.elapsed, float(s.fds)) for s in steady])
    third = max(1, len(steady) // 3)
    early = statistics.mean(s.rss_kib for s in steady[:third]) / 1024
    late = statistics.mean(s.rss_kib for s in steady[-third:]) / 1024
    baseline = samples[0]
    summary: dict[str, Any] = {
        "edition": result.edition,
        "seconds": round(result.seconds, 1),
        "operations": result.operations,
        "requests": result.requests,
        "requests_per_second": round(result.requests / max(result.seconds, 1e-9)),
        "errors": result.error_count(),
        "errors_by_kind": dict(result.errors),
        "first_errors": result.first_errors,
        "rss_mib_start": round(baseline.rss_kib / 1024, 1),
        "rss_mib_after_warm_up": round(steady[0].rss_kib / 1024, 1),
        "rss_mib_end": round(samples[-1].rss_kib / 1024, 1),
        "rss_mib_max": round(max(s.rss_kib for s in samples) / 1024, 1),
        "rss_mib_first_third_mean": round(early, 2),
        "rss_mib_last_third_mean": round(late, 2),
        "rss_slope_mib_per_minute": round(rss_slope, 3),
        "fds_start": baseline.fds,
        "fds_max": max(s.fds for s in samples),
        "fds_after_load": result.fds_after,
        "fd_slope_per_minute": round(fd_slope, 2),
        "threads_start": baseline.threads,
        "threads_max": max(s.threads for s in samples),
        "threads_after_load": result.threads_after,
        "exit_status": result.exit_status,
        "log_problems": result.log_problems[:20],
        "samples": [
            [round(s.elapsed, 1), s.rss_kib, s.fds, s.threads] for s in samples
        ],
    }
    # No trend: the last third of the run is within 2 MiB of the first third
    # and the fitted slope would add less than 1 MiB in ten more minutes.
    summary["rss_trend"] = abs(late - early) >= 2.0 or rss_slope * 10 >= 1.0
    summary["fd_leak"] = result.fds_after != baseline.fds
    summary["passed"] = (
        summary["errors"] == 0
        and not summary["rss_trend"]
        and not summary["fd_leak"]
        and result.exit_status == 0
        and not result.log_problems
    )
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    s = summary
    print(
        f"{s['edition']}: {s['seconds']:.0f} s, {s['requests']} requests"
        f" ({s['requests_per_second']}/s) in {s['operations']} operations,"
        f" {s['errors']} errors {s['errors_by_kind'] or ''}"
    )
    print(
        f"  RSS MiB: start {s['rss_mib_start']}, after warm-up"
        f" {s['rss_mib_after_warm_up']}, end {s['rss_mib_end']}, max"
        f" {s['rss_mib_max']}; first/last third {s['rss_mib_first_third_mean']}"
        f"/{s['rss_mib_last_third_mean']}; slope"
        f" {s['rss_slope_mib_per_minute']:+.3f} MiB/min"
    )
    print(
        f"  fds: start {s['fds_start']}, max {s['fds_max']}, after load"
        f" {s['fds_after_load']}; threads: start {s['threads_start']}, max"
        f" {s['threads_max']}, after load {s['threads_after_load']};"
        f" exit status {s['exit_status']}"
    )
    for line in s["first_errors"][:5]:
        print(f"  error: {line}")
    for line in s["log_problems"][:5]:
        print(f"  log: {line}")
    verdict = "PASS" if s["passed"] else "FAIL"
    print(
        f"  {verdict}: RSS trend {'yes' if s['rss_trend'] else 'none'},"
        f" fd leak {'yes' if s['fd_leak'] else 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="per edition")
    parser.add_argument(
        "--editions", nargs="+", choices=list(MODULES), default=list(MODULES)
    )
    parser.add_argument("--clients", type=int, default=6, help="client threads")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="operations per second, in all"
    )
    parser.add_argument("--interval", type=float, default=5.0, help="sample period")
    parser.add_argument("--warm-up", type=float, default=60.0, help="seconds")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="write the full results (samples too) here")
    parser.add_argument("--log-dir", default="/tmp", help="server logs go here")
    args = parser.parse_args(argv)
    if not Path("/proc/self/fd").is_dir():
        parser.error("needs Linux /proc")
    seconds = args.minutes * 60.0
    warm_up = min(args.warm_up, seconds / 4)
    summaries = []
    for edition in args.editions:
        print(f"== {edition}: {args.minutes:g} min", flush=True)
        summary = summarise(soak(edition, seconds, args), warm_up)
        print_summary(summary)
        summaries.append(summary)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summaries, out, indent=1)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    return 0 if all(s["passed"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
