"""``python -m bench throughput``: hello-page requests per second.

C connections for D seconds, once with keep-alive and once with
``Connection: close`` (a new TCP connection per request, which is what the
threaded edition's acceptor and the event loop's accept path pay for).
``wrk`` is used when it is on PATH: it is written in C and will not be the
bottleneck. The built-in asyncio client is a fallback, and on a small machine
it shares the CPU with the server it measures — the figures are then a floor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.client import Endpoint, KeepAliveClient, fetch
from bench.stats import NS_PER_SECOND, PERCENTILES, Sample, percentile
from bench.workloads import Workload, request_head, run_base, wrk_script

MODES = ("keep-alive", "close")
WRK = "wrk"
BUILTIN = "built-in"
MAX_REQUESTS = 2_000_000
"""The built-in client's bound on requests per run, whatever the duration."""


class ThroughputError(RuntimeError):
    """wrk failed or printed something we cannot read."""


@dataclass(frozen=True, slots=True)
class ThroughputRun:
    """One edition, one connection mode, one client."""

    name: str
    url: str
    mode: str
    client: str
    connections: int
    seconds: float
    requests: int
    errors: int
    requests_per_second: float
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    processes: int = 1
    """The server's ``--processes`` (1 for a --target: not ours to know)."""
    workload: Workload = Workload.SAME
    p999: float | None = None
    offered: float | None = None
    """The fixed rate offered (``--rate``); None for a closed-loop run."""
    rounds: int = 1
    """Runs this row is the median of (``--rounds``)."""
    cpu_us_per_request: float | None = None
    """The server's CPU (user + system, its child processes' too) over the
    load, in µs per request answered (:meth:`with_cpu`); in a row merged from
    rounds, the median of theirs. None: not read (not Linux, or a target not
    found on this machine) or nothing answered."""

    @property
    def label(self) -> str:
        """``threaded``, or ``threaded-2p`` when it ran with ``--processes 2``."""
        return self.name if self.processes == 1 else f"{self.name}-{self.processes}p"

    def with_cpu(self, cpu_seconds: float | None) -> ThroughputRun:
        """This run, charged ``cpu_seconds`` of server CPU over the requests
        its req/s counts (req/s x seconds): the built-in client's successes,
        every response wrk read. Not requests - errors: wrk counts a read
        error when a server closes after its answer (the Rust book's server,
        http.server with Connection: close), and the answer still cost CPU."""
        answered = self.requests_per_second * self.seconds
        if cpu_seconds is None or answered <= 0:
            return dataclasses.replace(self, cpu_us_per_request=None)
        per_request = cpu_seconds / answered * 1e6
        return dataclasses.replace(self, cpu_us_per_request=per_request)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "workload": self.workload.value,
            "processes": self.processes,
            "url": self.url,
            "mode": self.mode,
            "client": self.client,
            "connections": self.connections,
            "seconds": self.seconds,
            "requests": self.requests,
            "errors": self.errors,
            "requests_per_second": self.requests_per_second,
            "offered_per_second": self.offered,
            "rounds": self.rounds,
            "cpu_us_per_request": self.cpu_us_per_request,
            "latency_s": {
                "p50": self.p50,
                "p90": self.p90,
                "p99": self.p99,
                "p99.9": self.p999,
                "max": self.max,
            },
        }


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def median_of_rounds(rounds: Sequence[Sequence[ThroughputRun]]) -> list[ThroughputRun]:
    """One row per measurement made in every round (same server, workload,
    mode and client): its req/s, each latency and its CPU per request the
    median of the rounds', its requests, errors and seconds their sums, in the
    first round's order."""
    groups: dict[tuple[object, ...], list[ThroughputRun]] = {}
    for runs in rounds:
        seen: dict[tuple[object, ...], int] = {}
        for run in runs:
            # Not by URL: an edition we start listens on a new port each round.
            # A name twice in a round (a --target called like a peer) is two rows.
            name = (run.label, run.workload, run.mode, run.client)
            seen[name] = seen.get(name, 0) + 1
            groups.setdefault((*name, seen[name]), []).append(run)
    merged = []
    for same in groups.values():
        rps = statistics.median(run.requests_per_second for run in same)
        merged.append(
            dataclasses.replace(
                same[0],
                seconds=sum(run.seconds for run in same),
                requests=sum(run.requests for run in same),
                errors=sum(run.errors for run in same),
                requests_per_second=rps,
                p50=_median([run.p50 for run in same]),
                p90=_median([run.p90 for run in same]),
                p99=_median([run.p99 for run in same]),
                p999=_median([run.p999 for run in same]),
                max=_median([run.max for run in same]),
                rounds=len(same),
                cpu_us_per_request=_median([run.cpu_us_per_request for run in same]),
            )
        )
    return merged


@dataclass(frozen=True, slots=True)
class Load:
    """One measurement to make: which server, which mode, how hard, how long."""

    name: str
    endpoint: Endpoint
    mode: str
    connections: int
    seconds: float
    processes: int = 1
    threads: int = 2
    """wrk's ``--threads``: 2, as the targets in issue 8 were set (``wrk -t2``)."""
    workload: Workload = Workload.SAME


def find_wrk() -> str | None:
    """The path of ``wrk`` when it is on PATH."""
    return shutil.which("wrk")


# -- wrk ------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk_command(
    wrk: str, load: Load, script: Path | None = None, base: int = 0
) -> list[str]:
    """The wrk command line for ``load``; ``script`` sends its workload
    (:func:`~bench.workloads.wrk_script`), numbering from ``base``.

    wrk takes whole seconds; a shorter run is rounded up to one. Two threads
    (the default) load a 2-core machine the way the targets assume; one
    leaves more of it to the server, which flatters the servers that need
    more CPU per request.
    """
    command = [
        wrk,
        "--threads",
        str(load.threads),
        "--connections",
        str(load.connections),
        "--duration",
        f"{max(1, round(load.seconds))}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    if load.mode == "close":
        command += ["--header", "Connection: close"]
    if script is None:
        return [*command, load.endpoint.url + "/"]
    return [*command, "--script", str(script), load.endpoint.url + "/", "--", str(base)]


def parse_wrk(output: str, load: Load) -> ThroughputRun:
    """Read wrk's report: requests, time, errors, req/s, latency distribution."""
    total = re.search(r"(\d+) requests in " + _TIME, output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if total is None or rate is None:
        first = output.strip().splitlines()[:1]
        raise ThroughputError(f"cannot read wrk's output: {first}")
    errors = 0
    if sockets := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(group) for group in sockets.groups())
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_2xx.group(1))
    distribution = {
        int(match.group(1)): _seconds(match.group(2), match.group(3))
        for match in re.finditer(r"^\s+(\d+)%\s+" + _TIME, output, re.MULTILINE)
    }
    latency_max = None
    if line := re.search(
        r"Latency\s+" + _TIME + r"\s+" + _TIME + r"\s+" + _TIME, output
    ):
        latency_max = _seconds(line.group(5), line.group(6))
    return ThroughputRun(
        name=load.name,
        url=load.endpoint.url,
        mode=load.mode,
        client=WRK,
        connections=load.connections,
        seconds=_seconds(total.group(2), total.group(3)),
        requests=int(total.group(1)),
        errors=errors,
        requests_per_second=float(rate.group(1)),
        p50=distribution.get(50),
        p90=distribution.get(90),
        p99=distribution.get(99),
        max=latency_max,
        processes=load.processes,
        workload=load.workload,
    )


def run_wrk(wrk: str, load: Load) -> ThroughputRun:
    """Run wrk to completion (killed by PID if it overruns or we are stopped),
    with the workload's Lua script written to a temporary folder."""
    limit = max(1, round(load.seconds)) + 30
    with tempfile.TemporaryDirectory(prefix="hello-bench-") as folder:
        script = None
        if (text := wrk_script(load.workload)) is not None:
            script = Path(folder) / f"{load.workload.value}.lua"
            script.write_text(text, encoding="utf-8")
        command = wrk_command(wrk, load, script, run_base(time.time_ns()))
        done = _wrk(command, limit)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[:1]
        raise ThroughputError(f"wrk exited with status {done.returncode}: {why}")
    return parse_wrk(done.stdout, load)


def _wrk(command: list[str], limit: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ThroughputError(f"wrk did not finish within {limit} s") from None


# -- the built-in client --------------------------------------------------------


async def run_builtin(load: Load) -> ThroughputRun:
    """C closed-loop clients for ``seconds``; keep-alive or a connection each.

    Closed loop on purpose here: the question is how many requests a second
    the server completes when it is never idle, not how long each waits.
    """
    endpoint = load.endpoint
    loop = asyncio.get_running_loop()
    deadline = loop.time() + load.seconds
    origin = time.perf_counter_ns()
    samples: list[Sample] = []
    close = load.mode == "close"
    base = run_base(time.time_ns())

    async def connection(index: int) -> None:
        keep_alive = None if close else KeepAliveClient(endpoint)
        try:
            number = base + index * 1_000_000_000  # its own billion
            while loop.time() < deadline and len(samples) < MAX_REQUESTS:
                number += 1
                head = request_head(
                    load.workload,
                    endpoint.host_header,
                    number=number,
                    connection=index,
                    close=close,
                )
                samples.append(
                    await _request(endpoint, keep_alive, origin, deadline + 5, head)
                )
        finally:
            if keep_alive is not None:
                await keep_alive.close()

    await asyncio.gather(*(connection(i) for i in range(load.connections)))
    elapsed = (time.perf_counter_ns() - origin) / NS_PER_SECOND
    good = [s.latency_ns / NS_PER_SECOND for s in samples if s.ok]
    return _built_in_run(load, good, len(samples) - len(good), elapsed)


async def _request(
    endpoint: Endpoint,
    keep_alive: KeepAliveClient | None,
    origin: int,
    deadline: float,
    head: bytes,
) -> Sample:
    """Send ``head`` on the kept-alive connection, or on a fresh one if None."""
    if keep_alive is None:
        return await fetch(endpoint, "/", origin, deadline=deadline, head=head)
    return await keep_alive.get("/", origin, deadline=deadline, head=head)


def _built_in_run(
    load: Load,
    latencies: list[float],
    errors: int,
    elapsed: float,
    offered: float | None = None,
) -> ThroughputRun:
    """A built-in client's run, from its good requests' latencies (seconds)."""
    latencies.sort()
    p50, p90, p99, p999 = (
        (percentile(latencies, pct) for pct in (*PERCENTILES, 99.9))
        if latencies
        else (None,) * 4
    )
    return ThroughputRun(
        name=load.name,
        url=load.endpoint.url,
        mode=load.mode,
        client=BUILTIN,
        connections=load.connections,
        seconds=elapsed,
        requests=len(latencies) + errors,
        errors=errors,
        requests_per_second=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50=p50,
        p90=p90,
        p99=p99,
        max=latencies[-1] if latencies else None,
        processes=load.processes,
        workload=load.workload,
        p999=p999,
        offered=offered,
    )


# -- a fixed rate ----------------------------------------------------------------


def server_time(due: int, previous_done: int, sent: int, done: int) -> int:
    """A request's latency at a fixed rate, in ns: its answer's time, plus the
    time it was due while the server still held its connection's previous
    request (the queue a stall makes: coordinated omission corrected).

    Not the client's own lateness: a request whose connection was free when
    it fell due, but which the client's timer sent late, is timed from its
    send. asyncio's timers fire up to a millisecond late, so counting from
    ``due`` alone put nginx's p99 at 1.4 ms, the same as every other server's:
    the table measured the client (the README's tails section).
    """
    held = max(0, min(previous_done, sent) - due)
    return done - sent + held


async def run_fixed_rate(load: Load, rate: float) -> ThroughputRun:
    """``rate`` requests a second in all, spread over the connections and each
    sent on its schedule; a request's latency runs from when it was *due*.

    A closed-loop client waits for each answer before it sends again, so a
    server that stalls sees fewer requests and the client counts one slow
    answer: the queue the stall made is never measured (coordinated
    omission). Here a request due during a stall is sent late, and its
    lateness is part of its latency, as wrk2 counts it (:func:`server_time`).
    The built-in client only: wrk has no fixed rate.
    """
    endpoint = load.endpoint
    close = load.mode == "close"
    base = run_base(time.time_ns())
    count = max(1, round(load.seconds * rate))
    origin = time.perf_counter_ns()
    start = origin
    give_up = asyncio.get_running_loop().time() + load.seconds + 10
    latencies: list[float] = []
    errors = 0

    async def connection(index: int) -> None:
        nonlocal errors
        keep_alive = None if close else KeepAliveClient(endpoint)
        previous_done = start
        try:
            for k in range(index, count, load.connections):  # its share, in order
                due = start + round(k * NS_PER_SECOND / rate)
                if (wait := due - time.perf_counter_ns()) > 0:
                    await asyncio.sleep(wait / NS_PER_SECOND)
                head = request_head(
                    load.workload,
                    endpoint.host_header,
                    number=base + k + 1,
                    connection=index,
                    close=close,
                )
                sample = await _request(endpoint, keep_alive, origin, give_up, head)
                sent = origin + sample.start_ns
                if sample.ok:
                    done = sent + sample.latency_ns
                    charged = server_time(due, previous_done, sent, done)
                    latencies.append(charged / NS_PER_SECOND)
                    previous_done = done
                else:
                    errors += 1
                    previous_done = time.perf_counter_ns()
        finally:
            if keep_alive is not None:
                await keep_alive.close()

    await asyncio.gather(*(connection(i) for i in range(min(load.connections, count))))
    elapsed = (time.perf_counter_ns() - start) / NS_PER_SECOND
    return _built_in_run(load, latencies, errors, elapsed, offered=rate)
