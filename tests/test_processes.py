"""``--processes N``: one socket, N supervised servers (common/runtime/supervisor.py).

End to end, once per edition: the children share the parent's port and both
serve; a child killed with SIGKILL is logged and replaced while the server
keeps answering; SIGTERM to the parent answers every request in flight and
exits 0; ``--max-requests`` recycles children; a parent killed outright takes
its children with it. A child is told apart by the ``[PID]`` that
``--processes`` puts on every log line (access lines included) — the
responses themselves are the same bytes as with one process.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ServerFactory
from support import (
    Response,
    RunningServer,
    connect,
    request,
    sleep_started,
    thread_cpus,
    wait_for_count,
    without_date,
)

from bench import cli, report
from bench.throughput import ThroughputRun
from common.runtime.cli import Edition, parse_options
from common.runtime.supervisor import BACKOFF_MAX, backoff, describe

ROOT = Path(__file__).resolve().parent.parent
STARTED = r"Child process (\d+) started\."
ACCESS = re.compile(r"\[(\d+)\] 127\.0\.0\.1:\d+ \"GET (\S+) HTTP/1\.1\" (\d{3}) ")
LISTENING = re.compile(r"\[(\d+)\] Listening on http://127\.0\.0\.1:(\d+) \((.*)\)$")


def started_children(server: RunningServer, count: int) -> list[int]:
    """The PIDs of the first ``count`` children, once each is listening."""
    pids = [int(m.group(1)) for m in wait_for_count(server, STARTED, count)][:count]
    for pid in pids:
        server.wait_for_log(rf"\[{pid}\] Listening on ")
    return pids


def served_by(server: RunningServer) -> set[int]:
    """The PIDs that have logged an access line so far."""
    return {int(m.group(1)) for m in ACCESS.finditer(server.log())}


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- the command line and the pure helpers --------------------------------------------


def test_processes_flag_defaults_to_one_and_refuses_zero(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse_options(Edition.THREADED, []).processes == 1
    assert parse_options(Edition.ASYNCIO, ["--processes", "3"]).processes == 3
    with pytest.raises(SystemExit) as caught:
        parse_options(Edition.THREADED, ["--processes", "0"])
    assert caught.value.code == 2
    assert "--processes" in capsys.readouterr().err


def test_backoff_doubles_to_a_ceiling() -> None:
    assert [backoff(n) for n in range(5)] == [0.0, 0.1, 0.2, 0.4, 0.8]
    assert backoff(50) == backoff(5000) == BACKOFF_MAX  # a day of crashes: no overflow
    assert describe(0) == "exit status 0"
    assert describe(-signal.SIGKILL) == "killed by SIGKILL"


# -- one process: exactly as before --------------------------------------------------


def test_one_process_has_no_supervisor(
    edition: str, shared_servers: dict[str, RunningServer]
) -> None:
    server = shared_servers[edition]
    assert request(server.port, "/").status == 200
    log = server.log()
    first = log.splitlines()[0]
    assert "processes" not in first
    assert "Child process" not in log
    assert not ACCESS.search(log)  # no [PID] on the lines


# -- N processes, end to end -----------------------------------------------------------


def test_two_processes_share_one_port_and_both_serve(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--processes", "2")
    children = started_children(server, 2)
    parent = server.process.pid
    listening = [LISTENING.search(line) for line in server.lines]
    lines = [m for m in listening if m is not None]
    # Once from the parent with the process count, once per child: one port.
    assert int(lines[0].group(1)) == parent
    assert lines[0].group(3).endswith(", 2 processes")
    assert {int(m.group(2)) for m in lines} == {server.port}
    assert sum("processes" in m.group(3) for m in lines) == 1

    # The children compete for each connection: ask until both have answered.
    deadline = time.monotonic() + 15
    replies: list[Response] = []
    with ThreadPoolExecutor(4) as pool:
        while served_by(server) != set(children):
            assert time.monotonic() < deadline, server.log()
            replies += pool.map(lambda _: request(server.port, "/"), range(8))
    assert {reply.status for reply in replies} == {200}
    assert parent not in served_by(server)
    # The same bytes as one process would send: nothing added.
    assert without_date(replies[0].raw).startswith(b"HTTP/1.1 200 OK\r\n")
    assert "x-" not in "".join(replies[0].headers)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux's affinity")
def test_each_threaded_child_keeps_to_a_cpu_of_its_own(
    server_factory: ServerFactory,
) -> None:
    allowed = os.sched_getaffinity(0)
    server = server_factory("threaded", "--processes", "2")
    children = started_children(server, 2)
    cpus = [thread_cpus(pid) for pid in children]
    for threads in cpus:
        assert all(len(each) == 1 and each == threads[0] for each in threads), cpus
        assert threads[0] <= allowed
    if len(allowed) >= 2:
        assert cpus[0][0] != cpus[1][0], cpus
    assert thread_cpus(server.process.pid)[0] == allowed  # the parent is not kept


def test_a_killed_child_is_restarted_while_the_server_answers(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--processes", "2")
    victim, survivor = started_children(server, 2)
    os.kill(victim, signal.SIGKILL)
    # Served meanwhile by the survivor, or by the replacement once it is up.
    statuses = [request(server.port, "/").status for _ in range(20)]
    server.wait_for_log(rf"Child process {victim} died \(killed by SIGKILL\)")
    replacement = started_children(server, 3)[2]
    assert replacement not in (victim, survivor)
    statuses += [request(server.port, "/").status for _ in range(20)]
    assert statuses == [200] * 40
    assert alive(survivor)
    assert server.process.poll() is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_parent_answers_every_sleep_then_exits_0(
    edition: str, server_factory: ServerFactory, signum: signal.Signals
) -> None:
    server = server_factory(
        edition, "--processes", "2", "--sleep-seconds", "1", "--log-level", "debug"
    )
    children = started_children(server, 2)
    with ThreadPoolExecutor(4) as pool:
        sleepers = [pool.submit(request, server.port, "/sleep") for _ in range(4)]
        wait_for_count(server, sleep_started(edition), 4)
        server.signal(signum)
        replies = [sleeper.result(timeout=10) for sleeper in sleepers]
    assert [reply.status for reply in replies] == [200] * 4
    assert all(reply.header("connection") == "close" for reply in replies)
    assert server.wait(10) == 0
    log = server.log()
    assert f"{signum.name}: shutting down 2 child processes." in log
    for pid in children:
        assert f"[{pid}] Shutting down." in log
        assert not alive(pid)
    assert "All child processes have exited." in log
    assert "Traceback" not in log
    assert "again" not in log
    with pytest.raises(ConnectionRefusedError):
        connect(server.port, timeout=2)


def test_max_requests_recycles_children_and_serving_goes_on(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--processes", "2", "--max-requests", "2")
    started_children(server, 2)
    statuses = [request(server.port, "/").status for _ in range(12)]
    assert statuses == [200] * 12
    wait_for_count(server, ACCESS.pattern, 12)
    recycled = wait_for_count(
        server, r"Child process (\d+) finished after --max-requests 2; replacing", 3
    )
    # The budget counts per child: each one that stopped had answered two
    # (perhaps one more, taken in from the queue as it stopped).
    counts: dict[int, int] = {}
    for match in ACCESS.finditer(server.log()):
        counts[int(match.group(1))] = counts.get(int(match.group(1)), 0) + 1
    assert len(counts) >= 4
    for match in recycled:
        assert counts[int(match.group(1))] >= 2
    assert server.process.poll() is None  # the parent never stops by itself
    assert "died" not in server.log()
    assert request(server.port, "/").status == 200


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_children_stop_when_the_parent_is_killed(server_factory: ServerFactory) -> None:
    server = server_factory("threaded", "--processes", "2")
    # Each child logs "Listening" only once its signal handlers are installed.
    children = started_children(server, 2)
    server.process.kill()
    server.process.wait(5)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in children):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    # They stopped gracefully (SIGTERM), not killed.
    for pid in children:
        wait_for_count(server, rf"\[{pid}\] Shutting down\.", 1)


CRASHING = """
import sys
from common.runtime.cli import Edition, parse_options
from common.runtime.supervisor import supervise

options = parse_options(Edition.THREADED, ["--port", "0", "--processes", "2"])
sys.exit(supervise(options, lambda sock: 3, "crashing"))
"""


def test_a_crash_loop_backs_off_instead_of_spinning() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    server = RunningServer(edition="threaded", process=process)
    threading.Thread(target=server._pump, daemon=True).start()
    try:
        server.wait_for_log(r"Listening on http://127\.0\.0\.1:\d+ \(threaded, crash")
        time.sleep(2.0)  # a window to count restarts in, not a wait for a state
        server.signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        server.kill()
    deaths = re.findall(
        r"died \(exit status 3\).*restarting it in ([\d.]+) s", server.log()
    )
    # Two slots, each waiting 0.1, 0.2, 0.4, 0.8, 1.6 s...: a handful of
    # restarts in two seconds, not thousands.
    assert 4 <= len(deaths) <= 14, server.log()
    assert {"0.1", "0.2", "0.4"} <= set(deaths)
    assert max(float(delay) for delay in deaths) >= 0.8


# -- python -m bench throughput --processes ------------------------------------------


def test_bench_throughput_shows_the_scaling_side_by_side() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "throughput",
            "--editions",
            "asyncio",
            "--processes",
            "1,2",
            "--duration",
            "0.3",
            "--concurrency",
            "2",
            "--client",
            "builtin",
            "--workload",
            "varied",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--processes 2" in done.stderr  # how the second round was started
    assert "(asyncio, uvloop, 2 processes, pid" in done.stderr or (
        "(asyncio, asyncio, 2 processes, pid" in done.stderr
    )
    rows = [line.split() for line in done.stdout.splitlines()]
    labels = [
        tuple(row[:3]) for row in rows if row[:1] in (["asyncio"], ["asyncio-2p"])
    ]
    assert labels == [
        ("asyncio", "varied", "keep-alive"),
        ("asyncio", "varied", "close"),
        ("asyncio-2p", "varied", "keep-alive"),
        ("asyncio-2p", "varied", "close"),
        ("asyncio", "varied", "keep-alive"),  # the scaling table
        ("asyncio", "varied", "close"),
    ]
    assert "Scaling with --processes" in done.stdout
    scaling = rows[-1]
    assert float(scaling[3]) > 0
    assert float(scaling[4]) > 0
    assert scaling[5].endswith("x")


def test_scaling_table_and_its_refusals() -> None:
    def run(name: str, mode: str, processes: int, rate: float) -> ThroughputRun:
        return ThroughputRun(
            name,
            "u",
            mode,
            "wrk",
            16,
            5.0,
            1,
            0,
            rate,
            None,
            None,
            None,
            None,
            processes=processes,
        )

    runs = [
        run("threaded", "keep-alive", 1, 1000.0),
        run("threaded", "keep-alive", 2, 1500.0),
        run("target", "keep-alive", 1, 99.0),  # measured once: not compared
    ]
    table = report.scaling_table(runs)
    assert "threaded    same     keep-alive" in table
    assert "1.50x" in table
    assert "target" not in table
    assert report.scaling_table(runs[:1]) == ""
    assert runs[1].label == "threaded-2p"
    assert runs[1].as_dict()["processes"] == 2
    for bad in ("0", "1,1", "x", "1,99"):
        status = cli.main(
            ["throughput", "--processes", bad],
            stdout=io.StringIO(),
            stderr=(err := io.StringIO()),
        )
        assert status == 2, bad
        assert "--processes" in err.getvalue()
