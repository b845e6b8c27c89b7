"""Server CPU per request: ``bench/cpu.py`` reading ``/proc``, and the column
``python -m bench throughput`` prints from it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ServerFactory
from support import wait_for_count
from test_bench import bench, closed_port

from bench.cpu import CpuMeter, cpu_seconds, listening_pid, parse_stat, read_stat
from bench.peer_servers import ratio_table
from bench.report import throughput_table
from bench.throughput import ThroughputRun, median_of_rounds
from common.runtime.logs import LISTENING

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="no /proc (Linux only)"
)
CPU_COLUMN = "CPU µs/req"


def burn(seconds: float) -> None:
    """Spend about ``seconds`` of this process's CPU (bounded in wall time too)."""
    until = time.process_time() + seconds
    give_up = time.monotonic() + 10 * seconds + 5
    while time.process_time() < until and time.monotonic() < give_up:
        pass


def run(answered: int = 1000, errors: int = 0, name: str = "asyncio") -> ThroughputRun:
    """A built-in client's row of 2 s: its req/s counts only the answers."""
    return ThroughputRun(
        name, "http://127.0.0.1:1", "keep-alive", "built-in", 4, 2.0,
        answered + errors, errors, answered / 2.0, 0.001, 0.002, 0.003, 0.004,
    )  # fmt: skip


# -- reading /proc ---------------------------------------------------------------


def test_a_stat_line_is_read_after_the_last_parenthesis() -> None:
    # Field 2, the command name, holds spaces and both kinds of parenthesis.
    line = (
        "1234 (my (odd) server) x) S 42 1234 1234 0 -1 4194560 "
        "100 0 0 0 700 300 25 5 20 0 3 0 12345 1000000 500 18446744073709551615\n"
    )
    stat = parse_stat(line)
    assert (stat.pid, stat.parent, stat.ticks) == (1234, 42, 700 + 300 + 25 + 5)
    with pytest.raises(ValueError, match="not a /proc"):
        parse_stat("1234 no parenthesis S 1")
    with pytest.raises(ValueError, match="too few fields"):
        parse_stat("1234 (short) S 1 2 3")


@needs_proc
def test_cpu_seconds_grow_with_the_cpu_we_burn() -> None:
    pid = os.getpid()
    meter = CpuMeter(pid)
    meter.start()
    before = cpu_seconds(pid)
    burn(0.2)
    after = cpu_seconds(pid)
    spent = meter.stop()
    assert before is not None
    assert after is not None
    assert after - before >= 0.15  # ticks of 10 ms: 0.2 s reads as 0.19 at worst
    assert spent is not None
    assert spent >= 0.15
    assert CpuMeter(None).stop() is None  # a server not found: nothing measured


@needs_proc
def test_a_process_that_does_not_exist_has_no_cpu() -> None:
    # Process ids stay below pid_max: that one is never a process.
    missing = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert cpu_seconds(missing) is None
    assert read_stat(missing) is None
    meter = CpuMeter(missing)
    meter.start()
    assert meter.stop() is None


@needs_proc
def test_the_cpu_of_live_descendants_is_counted() -> None:
    program = (
        "import time\n"
        "until = time.process_time() + 0.3\n"
        "while time.process_time() < until: pass\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", program])
    try:
        deadline = time.monotonic() + 15
        burned = 0.0
        while burned < 0.3 and time.monotonic() < deadline:
            time.sleep(0.02)
            burned = cpu_seconds(child.pid) or 0.0
        assert burned >= 0.3, "the child did not burn its 0.3 s in time"
        # The child (it may still be burning), then us alone, then the tree:
        # each later reading is of counters that only grow.
        child_now = cpu_seconds(child.pid)
        own = read_stat(os.getpid())
        tree = cpu_seconds(os.getpid())
        assert own is not None
        assert tree is not None
        assert child_now is not None
        ticks = os.sysconf("SC_CLK_TCK")
        assert tree - own.ticks / ticks > child_now - 0.5 / ticks  # float sums
    finally:
        child.kill()
        child.wait(10)


@needs_proc
def test_the_listening_process_is_found_by_its_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert listening_pid(listener.getsockname()[1]) == os.getpid()
    assert listening_pid(closed_port()) is None
    if socket.has_ipv6:
        try:
            listener6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError:  # IPv6 switched off
            return
        with listener6:
            assert listening_pid(listener6.getsockname()[1]) == os.getpid()


# -- the rows and the tables -------------------------------------------------------


def test_cpu_is_charged_per_request_answered() -> None:
    assert run(1000).with_cpu(0.05).cpu_us_per_request == pytest.approx(50.0)
    assert run(500, errors=500).with_cpu(0.05).cpu_us_per_request == (
        pytest.approx(100.0)
    )
    assert run(0, errors=1000).with_cpu(0.05).cpu_us_per_request is None
    # wrk counts the Rust book's every answer, and a read error after each.
    book = replace(run(1000), client="wrk", errors=1000)
    assert book.with_cpu(0.05).cpu_us_per_request == pytest.approx(50.0)
    assert run(1000).with_cpu(None).cpu_us_per_request is None
    assert run(1000).with_cpu(0.05).as_dict()["cpu_us_per_request"] == (
        pytest.approx(50.0)
    )
    assert run(1000).as_dict()["cpu_us_per_request"] is None


def test_rounds_report_the_median_cpu_per_request() -> None:
    # Per request 10, 40 and 20 µs, over different request counts: the median
    # of the three figures (20), not the total CPU over the total requests.
    rounds = [
        [run(1000).with_cpu(0.01)],
        [run(4000).with_cpu(0.16)],
        [run(500).with_cpu(0.01)],
    ]
    (merged,) = median_of_rounds(rounds)
    assert merged.cpu_us_per_request == pytest.approx(20.0)
    (partly,) = median_of_rounds([[run().with_cpu(0.03)], [run()]])
    assert partly.cpu_us_per_request == pytest.approx(30.0)  # unknown is left out


def test_the_tables_show_cpu_per_request_or_a_dash() -> None:
    table = throughput_table([run().with_cpu(0.0125), run(name="threaded")])
    head, rows = table.splitlines()[3], table.splitlines()[5:7]
    assert head.endswith(CPU_COLUMN)
    assert rows[0].split()[-1] == "12.5"
    assert rows[1].split()[-1] == "-"
    peers = ratio_table([run().with_cpu(0.01), run(name="uvicorn").with_cpu(0.04)], {})
    uvicorn = next(line for line in peers.splitlines() if line.startswith("uvicorn"))
    assert uvicorn.split()[-1] == "0.25x"  # ours needs a quarter of its CPU


# -- end to end ------------------------------------------------------------------------


def throughput_rows(*args: str, results: Path) -> tuple[str, list[dict[str, object]]]:
    """Run the throughput bench (1 s per row); its table and its JSON rows."""
    done = bench(
        "throughput", "--duration", "1", "--concurrency", "4", "--workload", "same",
        "--json", str(results), *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(results.read_text())["runs"]
    return done.stdout, rows


def assert_plausible_cpu(table: str, rows: list[dict[str, object]]) -> None:
    assert CPU_COLUMN in table
    assert [row["mode"] for row in rows] == ["keep-alive", "close"]
    for row in rows:
        cpu = row["cpu_us_per_request"]
        assert isinstance(cpu, float), row
        # Some 10k requests a second: 5 µs a request is five ticks of the run.
        # A --processes supervisor alone (its children uncounted) spends none.
        assert 5 < cpu < 100_000, row


@needs_proc
def test_throughput_reports_the_cpu_of_the_edition_it_started(tmp_path: Path) -> None:
    table, rows = throughput_rows("--editions", "asyncio", results=tmp_path / "a.json")
    assert_plausible_cpu(table, rows)
    printed = [line.split() for line in table.splitlines()]
    assert [cells[-1] for cells in printed if cells[:1] == ["asyncio"]] == [
        f"{row['cpu_us_per_request']:.1f}" for row in rows
    ]


@needs_proc
def test_a_targets_cpu_is_read_from_the_process_on_its_port(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    server = server_factory("threaded", "--processes", "2", "--no-access-log")
    wait_for_count(server, LISTENING.pattern, 3)  # the supervisor, each child
    # Three processes hold the socket: the supervisor is the one above the rest.
    assert listening_pid(server.port) == server.process.pid
    url = f"http://{server.host}:{server.port}"
    table, rows = throughput_rows("--target", f"mine={url}", results=tmp_path / "t")
    assert_plausible_cpu(table, rows)
