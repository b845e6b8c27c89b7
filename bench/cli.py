"""The command line: ``python -m bench [latency|throughput|screenshot]``.

Everything the user can get wrong is checked before a server starts or a
request leaves: numbers and their ranges, URLs, names, output paths, whether
matplotlib is there for ``--plot``, whether each ``--target`` answers. Each
such mistake is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import itertools
import math
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

from bench import client, peer_servers, report, screenshot, servers
from bench.client import BadTarget, Endpoint
from bench.cpu import CpuMeter, listening_pid
from bench.footprint import FootprintWatch
from bench.idle import IDLE_CONNECTIONS, idle_growth
from bench.model import DESIGNS, EDITIONS
from bench.progress import Progress
from bench.scenarios import EditionRun, LatencySettings, run_latency
from bench.throughput import (
    BUILTIN,
    MODES,
    WRK,
    Load,
    ThroughputError,
    ThroughputRun,
    find_wrk,
    median_of_rounds,
    run_builtin,
    run_fixed_rate,
    run_wrk,
)
from bench.workloads import WORKLOADS, Workload
from common.runtime.cli import DefaultsHelp

PROG = "python -m bench"
PROBE_TIMEOUT = 3.0
MAX_CONCURRENCY = 1000
"""Both editions refuse connections beyond --max-connections (1024 by default)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered the way Ctrl-C is so that the same clean-up runs.

    A KeyboardInterrupt subclass because asyncio lets exactly those (and
    SystemExit) through a running loop at once instead of storing them in a
    task.
    """


# -- argument types ---------------------------------------------------------------


def _ranged(
    kind: Callable[[str], float], low: float, high: float, what: str
) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if math.isnan(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {what} between {low:g} and {high:g}"
            )
        return value

    return convert


def _positive(high: float, what: str) -> Callable[[str], float]:
    convert = _ranged(float, 0.0, high, what)

    def positive(text: str) -> float:
        value = convert(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} above 0")
        return value

    return positive


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True, slots=True)
class Target:
    """A server the user started: ``--target NAME=URL``."""

    name: str
    endpoint: Endpoint


def _target(text: str) -> Target:
    name, equals, url = text.partition("=")
    if not equals or not _NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=URL (NAME: letters, digits, '.', '_', '-')"
        )
    try:
        return Target(name, Endpoint.parse(url))
    except BadTarget as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def choices_list(text: str, choices: Sequence[str], what: str) -> tuple[str, ...]:
    """``a,b``: some of ``choices``, each once, in the order given (``what``
    names one of them in the error: ``an edition``)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in choices for name in names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose from {','.join(choices)} (comma-separated)"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names {what} twice")
    return names


def _editions(text: str) -> tuple[str, ...]:
    return choices_list(text, DESIGNS, "an edition")


def workload_list(
    text: str, allowed: Sequence[Workload] = WORKLOADS
) -> tuple[Workload, ...]:
    """``same,varied,browser``: the request heads to send, in order."""
    names = [workload.value for workload in allowed]
    return tuple(Workload(name) for name in choices_list(text, names, "a workload"))


MAX_PROCESSES = 64


def _process_counts(text: str) -> tuple[int, ...]:
    """``1,2``: the ``--processes`` values to start each edition with, in order."""
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        counts = ()
    if not counts or not all(1 <= n <= MAX_PROCESSES for n in counts):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of whole numbers "
            f"between 1 and {MAX_PROCESSES}"
        )
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r} names a count twice")
    return counts


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common(
    parser: argparse.ArgumentParser, *, concurrency: int, editions: tuple[str, ...]
) -> None:
    add = parser.add_argument
    add(
        "--concurrency",
        type=_ranged(int, 1, MAX_CONCURRENCY, "a whole number"),
        default=concurrency,
        metavar="C",
        help="simultaneous connections",
    )
    add(
        "--workers",
        type=_ranged(int, 1, 256, "a whole number"),
        default=4,
        metavar="N",
        help="threads in the threaded edition's pool (and in its model)",
    )
    add(
        "--editions",
        type=_editions,
        default=None,
        metavar="LIST",
        help=f"editions to start and measure, spawn being threaded --spawn "
        f"(default: {','.join(editions)}, or none when --target is given)",
    )
    parser.set_defaults(default_editions=editions)
    add(
        "--target",
        type=_target,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="also measure a server that is already running (repeatable); "
        "the only way to send traffic off loopback",
    )
    add("--json", type=Path, metavar="FILE", help="write the results as JSON")
    add("--quiet", action="store_true", help="no progress on stderr")


def build_latency_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Latency of GET /sleep and GET / under the chapter's three "
        "designs (a thread pool, a thread per connection, an event loop), side by "
        "side with a queueing model, and the threads and memory each takes. "
        "'python -m bench throughput --help' for the requests-per-second bench.",
        formatter_class=DefaultsHelp,
    )
    _common(parser, concurrency=16, editions=DESIGNS)
    add = parser.add_argument
    add(
        "--sleep-seconds",
        type=_positive(60, "a number of seconds"),
        default=1.0,
        metavar="S",
        help="how long GET /sleep waits (passed to the editions started)",
    )
    add(
        "--duration",
        type=_positive(600, "a number of seconds"),
        default=None,
        metavar="D",
        help="time limit per edition; unanswered requests then count as "
        "timeouts (default: twice the slowest model plus 5 s)",
    )
    add(
        "--rate",
        type=_positive(200, "a number of requests per second"),
        default=20.0,
        metavar="R",
        help="GET / per second while the /sleep requests run",
    )
    add("--plot", type=Path, metavar="FILE.png", help="draw the latencies (matplotlib)")
    return parser


def build_throughput_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=f"{PROG} throughput",
        description="Hello-page requests per second per edition, with keep-alive "
        "and with Connection: close; wrk when it is on PATH.",
        formatter_class=DefaultsHelp,
    )
    _common(parser, concurrency=16, editions=EDITIONS)
    add = parser.add_argument
    add(
        "--duration",
        type=_positive(600, "a number of seconds"),
        default=5.0,
        metavar="D",
        help="seconds of load per edition and connection mode",
    )
    add(
        "--workload",
        type=workload_list,
        default=WORKLOADS,
        metavar="LIST",
        help="request heads to send, each measured on its own: same (one "
        "identical request: the cache-friendly best case), varied (every "
        "target and X-Request-Id differ), browser (Chromium's navigation head, "
        "a cookie per connection) (default: same,varied,browser)",
    )
    add(
        "--rate",
        type=_positive(1_000_000, "a number of requests a second"),
        default=None,
        metavar="R",
        help="instead of as fast as it can, send R requests a second in all, "
        "each on its schedule; a request's latency is its answer's time plus "
        "any time it was due while the server still held its connection (the "
        "coordinated-omission correction; not the client's own lateness), "
        "and print p50/p99/p99.9/max at "
        "that offered rate: pick R below the slowest compared server's peak "
        "(built-in client)",
    )
    add(
        "--client",
        choices=["auto", "wrk", "builtin"],
        default="auto",
        help="load generator: auto uses wrk when it is on PATH",
    )
    add(
        "--processes",
        type=_process_counts,
        default=(1,),
        metavar="LIST",
        help="start each edition with each of these --processes counts in turn "
        "(e.g. 1,2) and print the scaling side by side (default: 1)",
    )
    add(
        "--wrk-threads",
        type=_ranged(int, 1, 64, "a whole number"),
        default=2,
        metavar="N",
        help="wrk's --threads (2: the way the README's targets were measured)",
    )
    add(
        "--peers",
        action="store_true",
        help="also run the same wrk load on the installed peer servers "
        "(uvicorn, granian, aiohttp, gunicorn gthread, stdlib) and print ours/peer "
        "ratios",
    )
    add(
        "--rounds",
        type=_ranged(int, 1, 20, "a whole number"),
        default=1,
        metavar="N",
        help="measure everything N times over, in the same order each round, "
        "and report each row's median (req/s, latencies): on a shared machine a "
        "burst of noise then moves one round, not the result",
    )
    return parser


# -- configuration ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What to measure: editions to start, targets already running, outputs."""

    editions: tuple[str, ...]
    targets: tuple[Target, ...]
    workers: int
    json: Path | None

    def names(self) -> list[str]:
        return [*self.editions, *(target.name for target in self.targets)]


def _plan(args: argparse.Namespace) -> Plan:
    targets = tuple(args.target)
    editions = args.editions
    if editions is None:
        editions = () if targets else args.default_editions
    plan = Plan(editions, targets, int(args.workers), args.json)
    names = plan.names()
    if duplicated := sorted({name for name in names if names.count(name) > 1}):
        raise UsageError(f"the name {duplicated[0]!r} is used twice")
    if plan.json is not None:
        _check_output(plan.json, "--json")
    return plan


def _check_output(path: Path, option: str) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder")


# -- running ----------------------------------------------------------------------


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the duration, so that the
    ``finally`` blocks that stop the servers run for it as for Ctrl-C."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def _check_targets(targets: Sequence[Target], progress: Progress) -> None:
    """Every target must answer GET / before anything else starts."""
    for target in targets:
        sample = await client.probe(target.endpoint, PROBE_TIMEOUT)
        if sample.error is not None and sample.status is None:
            raise UsageError(
                f"cannot reach target {target.name} at {target.endpoint.url}: "
                f"{sample.error}"
            )
        where = "" if target.endpoint.loopback else " (not loopback: as asked)"
        progress.phase(
            f"target {target.name} at {target.endpoint.url}{where} answered "
            f"{sample.status} in {sample.latency_ns / 1e6:.1f} ms"
        )


async def _warm_up(name: str, endpoint: Endpoint) -> None:
    """One GET / first: the first request of a fresh process pays for imports
    and caches, and must not be charged to the scenario."""
    sample = await client.probe(endpoint, PROBE_TIMEOUT)
    if sample.status is None:
        raise servers.ServerError(
            f"{name} at {endpoint.url} does not answer: {sample.error}"
        )


@dataclass(frozen=True, slots=True)
class Subject:
    """One server to measure, started by the bench or given with --target."""

    name: str
    endpoint: Endpoint
    details: str
    started: bool
    pid: int | None = None
    """The server's process, whose /proc the bench reads: the one it started,
    or a target's listening process on this machine (None: not found)."""


def _subjects(plan: Plan, launched: dict[str, servers.LaunchedServer]) -> list[Subject]:
    """The editions started, then the targets, in the order given; a target
    on loopback with the pid of the process listening on its port, if found."""
    chosen = []
    for name in plan.editions:
        server = launched[name]
        assert server.endpoint is not None  # launched() guarantees it
        chosen.append(Subject(name, server.endpoint, server.details, True, server.pid))
    for target in plan.targets:
        local = target.endpoint.loopback
        pid = listening_pid(target.endpoint.port) if local else None
        chosen.append(Subject(target.name, target.endpoint, "target", False, pid))
    return chosen


def latency_main(argv: Sequence[str], stdout: TextIO, progress: Progress) -> int:
    args = build_latency_parser().parse_args(argv)
    if args.quiet:
        progress.silence()
    plan = _plan(args)
    settings = LatencySettings(
        concurrency=int(args.concurrency),
        sleep_seconds=args.sleep_seconds,
        workers=plan.workers,
        rate=args.rate,
        duration=args.duration,
    )
    if args.plot is not None:
        _check_output(args.plot, "--plot")
        if not report.plot_available():
            raise UsageError(f"--plot needs matplotlib: {report.PLOT_EXTRA}")
    client.run(lambda: _check_targets(plan.targets, progress))
    server_settings = servers.ServerSettings(settings.sleep_seconds, settings.workers)

    async def measure(subjects: list[Subject]) -> list[EditionRun]:
        runs = []
        for subject in subjects:
            name = subject.name
            await _warm_up(name, subject.endpoint)
            # A target named after an edition is compared with that edition's
            # model, on the bench's --workers and --sleep-seconds.
            model = settings.model(name) if name in DESIGNS else None
            progress.phase(
                f"{name}: {settings.concurrency} x GET /sleep + GET / at "
                f"{settings.rate:g}/s (time limit {settings.time_limit():g} s)"
            )
            # Only a server it started: a target's peaks are its whole life's.
            pid = subject.pid if subject.started else None
            watch = None if pid is None else FootprintWatch(pid)
            run = await run_latency(
                name,
                subject.endpoint,
                settings,
                details=subject.details,
                started=subject.started,
                model=model,
                status=progress.status,
            )
            if watch is not None:
                run = dataclasses.replace(run, footprint=await watch.stop())
            progress.phase(f"{name}: done in {run.wall_seconds:.1f} s")
            runs.append(run)
        return runs

    with servers.launched(
        plan.editions, server_settings, on_event=progress.phase
    ) as launched:
        runs = client.run(functools.partial(measure, _subjects(plan, launched)))
    progress.done()
    stdout.write(report.latency_table(settings, runs))
    stdout.flush()
    if plan.json is not None:
        document = report.latency_json(settings, runs, client.loop_name())
        report.write_json(plan.json, document)
        progress.phase(f"wrote {plan.json}")
    if args.plot is not None:
        report.write_plot(args.plot, settings, runs)
        progress.phase(f"wrote {args.plot}")
    return EXIT_OK


def _peer_rss(peers: bool, wrk: str | None) -> dict[str, float | None]:
    """--peers needs wrk; the RSS of each server after the load goes here."""
    if peers and wrk is None:
        raise UsageError(f"--peers: {peer_servers.INSTALL_WRK}")
    return {}


def _metered(
    measure: Callable[[Load], ThroughputRun], load: Load, pid: int | None
) -> ThroughputRun:
    """``measure(load)``, charged the CPU that ``pid`` (the server) and its
    descendants spent between just before the load and just after it."""
    meter = CpuMeter(pid)
    meter.start()
    run = measure(load)
    return run.with_cpu(meter.stop())


def _run_peers(
    measure: Callable[[Load], ThroughputRun],
    *,
    workloads: tuple[Workload, ...],
    connections: int,
    seconds: float,
    threads: int,
    progress: Progress,
    runs: list[ThroughputRun],
    rss: dict[str, float | None],
) -> None:
    """The same wrk load on each installed peer, one at a time (--peers)."""
    for peer in peer_servers.PEERS:
        runs_to_make = list(itertools.product(workloads, MODES))
        rounds = (
            [[one] for one in runs_to_make] if peer.fresh_per_run else [runs_to_make]
        )
        for pairs in rounds:
            with peer_servers.launched(peer, progress.phase) as running:
                if running is None:
                    break
                client.run(functools.partial(_warm_up, peer.name, running.endpoint))
                for workload, mode in pairs:
                    load = Load(
                        peer.name,
                        running.endpoint,
                        mode,
                        connections,
                        seconds,
                        threads=threads,
                        workload=workload,
                    )
                    progress.phase(
                        f"{peer.name}: {workload.value}, {mode}, "
                        f"{connections} connections"
                    )
                    runs.append(_metered(measure, load, running.pid))
                rss[peer.name] = peer_servers.rss_mib(running.pid)


def _load_generator(
    wrk: str | None,
    threads: int,
    connections: int,
    choice: str,
    offered: float | None = None,
) -> str:
    """The progress line that says which client makes the load."""
    if offered is not None:
        return (
            f"a fixed rate: {offered:g} requests a second over {connections} "
            "connections, the built-in client, latency including the time "
            "each request was due while the server held its connection"
        )
    if wrk is not None:
        plural = "s" if threads > 1 else ""
        return f"using wrk ({wrk}), {threads} thread{plural}, {connections} connections"
    why = "--client builtin" if choice == "builtin" else "wrk is not on PATH"
    return (
        f"{why}: using the built-in asyncio client ({client.loop_name()}); "
        "on a small machine it may itself be the bottleneck"
    )


def _measurer(wrk: str | None, rate: float | None) -> Callable[[Load], ThroughputRun]:
    """How each load is run: at a fixed rate (``--rate``), else flat out with
    wrk when there is one, else flat out with the built-in client."""

    def measure(load: Load) -> ThroughputRun:
        if rate is not None:
            return client.run(functools.partial(run_fixed_rate, load, rate))
        if wrk is not None:
            return run_wrk(wrk, load)
        return client.run(functools.partial(run_builtin, load))

    return measure


def _measure_memory(
    launched: dict[str, servers.LaunchedServer],
    progress: Progress,
    rss: dict[str, float | None],
    idle: dict[str, float | None],
) -> None:
    """Our editions' RSS after the load, then what idle connections add to it."""
    for name, server in launched.items():
        rss[name] = peer_servers.rss_mib(server.pid)
    for name, server in launched.items():
        assert server.endpoint is not None  # launched() waited for it
        progress.phase(f"{name}: {IDLE_CONNECTIONS} idle keep-alive connections")
        idle[name] = client.run(
            functools.partial(idle_growth, server.endpoint, server.pid)
        )


@dataclass(slots=True)
class _Round:
    """What one round of ``python -m bench throughput`` measures, and with what."""

    args: argparse.Namespace
    plan: Plan
    measure: Callable[[Load], ThroughputRun]
    tool: str
    """Named in the progress lines: wrk, or the built-in client."""
    wrk: str | None
    """The peers need wrk on PATH, even when --rate has the built-in client
    make the load."""
    progress: Progress
    rss: dict[str, float | None]
    idle: dict[str, float | None]

    def run(self, number: int) -> list[ThroughputRun]:
        """Every edition (each --processes count), target and peer, once.
        Memory is measured in the first round only."""
        args, progress = self.args, self.progress
        connections, seconds = int(args.concurrency), float(args.duration)
        if args.rounds > 1:
            progress.phase(f"round {number + 1} of {args.rounds}")
        runs: list[ThroughputRun] = []
        # One pass per --processes count; the targets (not ours) in the first only.
        for pass_, processes in enumerate(args.processes):
            # /sleep plays no part here; the editions get the latency bench's defaults.
            server_settings = servers.ServerSettings(
                sleep_seconds=1.0, workers=self.plan.workers, processes=processes
            )
            with servers.launched(
                self.plan.editions, server_settings, on_event=progress.phase
            ) as launched:
                for subject in _subjects(self.plan, launched):
                    if pass_ and not subject.started:
                        continue
                    count = processes if subject.started else 1
                    runs += self._subject(subject, count)
                if args.peers and not pass_ and not number:  # after the load
                    _measure_memory(launched, progress, self.rss, self.idle)
        if args.peers and self.wrk is not None:
            _run_peers(
                self.measure,
                workloads=args.workload,
                connections=connections,
                seconds=seconds,
                threads=int(args.wrk_threads),
                progress=progress,
                runs=runs,
                rss=self.rss if not number else {},  # as ours: after the first
            )
        return runs

    def _subject(self, subject: Subject, count: int) -> list[ThroughputRun]:
        """Every workload and connection mode on one server."""
        args, progress = self.args, self.progress
        connections, seconds = int(args.concurrency), float(args.duration)
        name = subject.name
        label = name if count == 1 else f"{name}-{count}p"
        client.run(functools.partial(_warm_up, name, subject.endpoint))
        if not subject.started:  # its process found by its port, if local
            port = subject.endpoint.port
            progress.phase(
                f"{name}: no process here listens on port {port}: no CPU figure"
                if subject.pid is None
                else f"{name}: CPU read from pid {subject.pid}, listening on {port}"
            )
        runs = []
        for workload, mode in itertools.product(args.workload, MODES):
            load = Load(
                name,
                subject.endpoint,
                mode,
                connections,
                seconds,
                count,
                int(args.wrk_threads),
                workload,
            )
            progress.phase(
                f"{label}: {workload.value}, {mode}, {connections} "
                f"connections, {seconds:g} s ({self.tool})"
            )
            run = _metered(self.measure, load, subject.pid)
            rate, cpu = run.requests_per_second, run.cpu_us_per_request
            per_request = "" if cpu is None else f", {cpu:.1f} µs CPU/req"
            progress.phase(
                f"{label}: {workload.value}, {mode}: {rate:.0f} req/s{per_request}"
            )
            runs.append(run)
        return runs


def throughput_main(argv: Sequence[str], stdout: TextIO, progress: Progress) -> int:
    args = build_throughput_parser().parse_args(argv)
    if args.quiet:
        progress.silence()
    plan = _plan(args)
    connections = int(args.concurrency)
    seconds: float = args.duration
    threads = int(args.wrk_threads)
    wrk = find_wrk() if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        raise UsageError("--client wrk: wrk is not on PATH")
    rss = _peer_rss(args.peers, wrk)
    idle: dict[str, float | None] = {}
    offered: float | None = args.rate
    measure = _measurer(wrk, offered)
    progress.phase(_load_generator(wrk, threads, connections, args.client, offered))
    client.run(lambda: _check_targets(plan.targets, progress))
    tool = WRK if wrk is not None and offered is None else BUILTIN
    one_round = _Round(args, plan, measure, tool, wrk, progress, rss, idle)
    rounds = [one_round.run(number) for number in range(args.rounds)]
    runs = median_of_rounds(rounds)  # one round: its own rows
    progress.done()
    if len(rounds) > 1:
        stdout.write(f"Medians of {len(rounds)} rounds, each in the same order.\n")
    stdout.write(report.throughput_table(runs))
    if offered is not None:
        stdout.write("\n" + report.tails_table(runs, offered))
    if scaling := report.scaling_table(runs):
        stdout.write("\n" + scaling)
    if args.peers and offered is None:  # at a fixed rate, the tails compare
        stdout.write("\n" + peer_servers.ratio_table(runs, rss, idle))
    stdout.flush()
    if plan.json is not None:
        report.write_json(plan.json, report.throughput_json(runs, seconds))
        progress.phase(f"wrote {plan.json}")
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the bench; return the exit status.

    0 when it ran, 1 when a server failed to start or answer (or wrk failed),
    2 on bad input, 128 + the signal number when interrupted.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    if arguments and arguments[0] == "screenshot":
        return screenshot.main(arguments[1:], stdout=out, stderr=err)
    command = "latency"
    if arguments and arguments[0] in ("latency", "throughput"):
        command = arguments.pop(0)
    progress = Progress(err)
    prog = PROG if command == "latency" else f"{PROG} throughput"
    try:
        with _interrupt_on_sigterm():
            if command == "throughput":
                return throughput_main(arguments, out, progress)
            return latency_main(arguments, out, progress)
    except UsageError as error:
        progress.done()
        err.write(f"{prog}: error: {error} (see --help)\n")
        return EXIT_USAGE
    except (servers.ServerError, ThroughputError, OSError) as error:
        progress.done()
        err.write(f"{prog}: failed: {error}\n")
        return EXIT_FAILED
    except KeyboardInterrupt as interrupt:
        progress.done()
        err.write(f"{prog}: interrupted; the servers it started are stopped\n")
        signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        return 128 + signum
