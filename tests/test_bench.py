"""The bench: against both real editions with tiny settings, and every refusal.

End-to-end runs use sleep 0.1 s, C=4 and 2 workers: the threaded edition then
serves the /sleep requests in two waves (the last near 0.2 s) and the asyncio
edition in one (near 0.1 s) — the book's point, small enough to run in CI.
Everything else (the model, percentiles, URL parsing, wrk's report, the
response reader, the table and the plot) is checked without a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support import RunningServer, only_line, read_until_close

from bench import cli, core_cost, peer_servers, report, servers
from bench.client import BadTarget, Endpoint, read_response
from bench.footprint import FootprintWatch
from bench.idle import idle_growth
from bench.model import QueueModel
from bench.peer_servers import PEERS, RUST_BOOK_NOTE, installed, launched, ratio_table
from bench.scenarios import EditionRun, LatencySettings, RouteResult
from bench.stats import NS_PER_SECOND, Sample, percentile, summarise
from bench.throughput import (
    Load,
    ThroughputRun,
    median_of_rounds,
    parse_wrk,
    run_fixed_rate,
    server_time,
    wrk_command,
)
from common.routes import Pages

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--sleep-seconds", "0.1", "--concurrency", "4", "--workers", "2")
TABLE_ROW = re.compile(
    r"^(?P<edition>\S*)\s+(?P<route>/\S*)?\s*(?P<kind>measured|model)\s+"
    r"(?P<count>\d+)\s+(?P<errors>\d+|-)\s+"
    r"(?P<p50>[\d.]+)\s+(?P<p90>[\d.]+)\s+(?P<p99>[\d.]+)\s+(?P<max>[\d.]+)\s+"
    r"(?P<rate>[\d.]+)(?:\s+(?P<threads>\d+|-)\s+(?P<rss>[\d.]+|-))?$"
)


def bench(
    *args: str,
    timeout: float = 60,
    module: str = "bench",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` (or another ``module``) as a user would run
    it, from the checkout."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
    )


def run_main(*args: str) -> tuple[int, str, str]:
    """The bench in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(list(args), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_error(stderr: str, *needles: str) -> None:
    line = only_line(stderr)
    assert "Traceback" not in stderr
    assert line.startswith("python -m bench"), line
    for needle in needles:
        assert needle in line, line


# -- end to end, both editions ----------------------------------------------------


def check_edition_json(edition: dict[str, Any]) -> None:
    """One design's entry in the latency JSON: its shape and its samples."""
    assert edition["started"] is True
    assert edition["peak_rss_mib"] > 5
    assert edition["peak_threads"] >= 1
    assert edition["url"].startswith("http://127.0.0.1:")
    assert set(edition["routes"]) == {"/sleep", "/"}
    sleep = edition["routes"]["/sleep"]
    assert set(sleep) == {"summary", "model", "samples", "model_fit"}
    assert sleep["summary"]["count"] == 4
    assert sleep["summary"]["errors"] == 0
    assert set(sleep["summary"]["latency_s"]) == {"p50", "p90", "p99", "max"}
    assert sleep["model_fit"]["answered"] == 4
    assert 0 <= sleep["model_fit"]["within"] <= 4
    assert sleep["model_fit"]["tolerance"] == 0.05
    assert len(sleep["samples"]) == 4
    for sample in sleep["samples"]:
        keys = {"start_ns", "latency_ns", "status", "error", "sent_ns"}
        assert set(sample) == keys
        assert sample["status"] == 200
        assert isinstance(sample["latency_ns"], int)
        # Sent after the connect began, answered after it was sent.
        end = sample["start_ns"] + sample["latency_ns"]
        assert sample["start_ns"] < sample["sent_ns"] < end
    assert "model_fit" not in edition["routes"]["/"]
    assert edition["routes"]["/"]["summary"]["errors"] == 0


def test_latency_bench_against_the_three_designs(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    done = bench(*TINY, "--json", str(results))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # Progress on stderr, the table alone on stdout.
    assert "bench: threaded listening on http://127.0.0.1:" in done.stderr
    assert "bench: stopped asyncio (pid" in done.stderr
    assert "bench:" not in done.stdout

    rows = [
        m.groupdict()
        for line in done.stdout.splitlines()
        if (m := TABLE_ROW.match(line))
    ]
    assert len(rows) == 12, done.stdout  # 3 designs x 2 routes x measured/model
    assert [(r["edition"], r["route"], r["kind"]) for r in rows[:4]] == [
        ("threaded", "/sleep", "measured"),
        ("", None, "model"),
        ("threaded", "/", "measured"),
        ("", None, "model"),
    ]
    assert [r["edition"] for r in rows[4::2]] == ["spawn"] * 2 + ["asyncio"] * 2
    # Each design's peak threads and memory, on its first row.
    assert all(rows[i]["threads"] not in (None, "-") for i in (0, 4, 8))
    assert "ceil(k/2) x 0.1 s" in done.stdout
    assert "spawn model: every /sleep at 1 x 0.1 s" in done.stdout
    fits = re.findall(
        r"/sleep against the model, each timed from its send: (\d+) of (\d+) within 5%",
        done.stdout,
    )
    assert [answered for _, answered in fits] == ["4", "4", "4"], done.stdout

    document = json.loads(results.read_text())
    assert document["bench"] == "latency"
    assert document["settings"]["concurrency"] == 4
    editions = {edition["name"]: edition for edition in document["editions"]}
    assert list(editions) == ["threaded", "spawn", "asyncio"]
    for edition in editions.values():
        check_edition_json(edition)

    threaded = editions["threaded"]["routes"]["/sleep"]["summary"]["latency_s"]
    spawn = editions["spawn"]["routes"]["/sleep"]["summary"]["latency_s"]
    asyncio_ = editions["asyncio"]["routes"]["/sleep"]["summary"]["latency_s"]
    # Two waves of two on the pool; one wave on a thread each, and on the loop.
    assert 0.09 <= threaded["p50"] < 0.18
    assert 0.18 <= threaded["max"] < 0.35
    assert 0.09 <= spawn["max"] < 0.18
    assert 0.09 <= asyncio_["max"] < 0.18
    # A thread for each of the four sleeps (and the accepting one), beyond
    # what the pool of two holds.
    assert editions["spawn"]["peak_threads"] >= 5
    assert editions["spawn"]["peak_threads"] > editions["threaded"]["peak_threads"]
    model = editions["threaded"]["routes"]["/sleep"]["model"]["latency_s"]
    assert model["max"] == pytest.approx(0.2)


def test_throughput_with_the_builtin_client() -> None:
    done = bench(
        "throughput",
        "--duration",
        "0.3",
        "--concurrency",
        "2",
        "--workers",
        "2",
        "--client",
        "builtin",
    )
    assert done.returncode == 0, done.stderr
    assert "may itself be the bottleneck" in done.stderr
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if line.startswith(("threaded ", "asyncio "))
    ]
    assert [tuple(row[:4]) for row in rows] == [
        (edition, workload, mode, "built-in")
        for edition in ("threaded", "asyncio")
        for workload in ("same", "varied", "browser")
        for mode in ("keep-alive", "close")
    ]
    for row in rows:
        requests, errors, rate = int(row[5]), int(row[6]), float(row[7])
        assert requests > 0
        assert errors == 0
        assert rate > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not on PATH")
def test_throughput_with_wrk(tmp_path: Path) -> None:
    results = tmp_path / "throughput.json"
    done = bench(
        "throughput",
        "--editions",
        "asyncio",
        "--duration",
        "1",
        "--concurrency",
        "2",
        "--client",
        "wrk",
        "--workload",
        "varied,same",
        "--json",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    assert "using wrk" in done.stderr
    runs = json.loads(results.read_text())["runs"]
    assert [(r["name"], r["workload"], r["mode"], r["client"]) for r in runs] == [
        ("asyncio", "varied", "keep-alive", "wrk"),
        ("asyncio", "varied", "close", "wrk"),
        ("asyncio", "same", "keep-alive", "wrk"),
        ("asyncio", "same", "close", "wrk"),
    ]
    assert all(run["requests_per_second"] > 0 for run in runs)


class HeadRecorder:
    """A stand-in server that records every request head, per connection,
    and answers each with a tiny 200 (closing when asked to)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.heads: list[list[bytes]] = []  # one list per connection
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            heads: list[bytes] = []
            with self._lock:
                self.heads.append(heads)
            threading.Thread(
                target=self._serve, args=(sock, heads), daemon=True
            ).start()

    def _serve(self, sock: socket.socket, heads: list[bytes]) -> None:
        buffer = b""
        with sock:
            while True:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b"\r\n\r\n" in buffer:
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    heads.append(head)
                    self.before_answering(len(heads))
                    close = b"connection: close" in head.lower()
                    sock.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                        + (b"Connection: close\r\n" if close else b"")
                        + b"\r\nok"
                    )
                    if close:
                        return

    def before_answering(self, count: int) -> None:
        """Called before each answer; ``count``: the connection's requests so far."""

    def close(self) -> None:
        self.listener.close()


CLIENTS = [
    "builtin",
    pytest.param(
        "wrk",
        marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="no wrk"),
    ),
]


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("workload", ["same", "varied", "browser"])
def test_each_workload_sends_what_it_says(client: str, workload: str) -> None:
    recorder = HeadRecorder()
    try:
        done = bench(
            "throughput",
            "--target",
            f"recorder=http://127.0.0.1:{recorder.port}",
            "--workload",
            workload,
            "--duration",
            "0.5",
            "--concurrency",
            "2",
            "--client",
            client,
        )
    finally:
        recorder.close()
    assert done.returncode == 0, done.stderr
    # The keep-alive phase's connections; the rest carried one request each
    # (the close phase, and the bench's own probe before the load).
    keep_alive = [heads for heads in recorder.heads if len(heads) > 1]
    assert keep_alive
    mark = {"same": b"GET / ", "varied": b"GET /?n=", "browser": b"GET / "}[workload]
    load = [h for heads in recorder.heads for h in heads if h.startswith(mark)]
    assert len(load) > 100
    if workload == "same":
        assert len({h for heads in keep_alive for h in heads}) == 1
    elif workload == "varied":
        assert len(set(load)) == len(load)  # no two alike: no cache can answer
        assert all(h.startswith(mark) for heads in keep_alive for h in heads)
    else:
        assert all(b"Sec-Fetch-Mode: navigate" in h for c in keep_alive for h in c)
        assert all(len(h) > 500 for heads in keep_alive for h in heads)
        assert all(len(set(heads)) == 1 for heads in keep_alive)  # one connection
        cookies = {re.findall(rb"Cookie: (\S+)", heads[0])[0] for heads in keep_alive}
        assert len(cookies) == 2  # two connections (wrk: two threads), two cookies


def test_sigterm_stops_the_bench_and_its_servers() -> None:
    """Interrupted mid-run, the bench still stops every server it started."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench",
            "--sleep-seconds",
            "5",
            "--concurrency",
            "2",
            "--workers",
            "1",
            "--editions",
            "threaded",
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not any("x GET /sleep" in line for line in seen):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "".join(seen)
            seen.append(line)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    while (line := lines.get(timeout=5)) is not None:
        seen.append(line)
    log = "".join(seen)
    assert "interrupted" in log
    (pid,) = re.findall(r"listening on \S+ \(.*pid (\d+)\)", log)
    assert f"stopped threaded (pid {pid}, exit" in log
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


def test_a_server_that_fails_to_start_is_reported_and_the_rest_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(servers.MODULES, "threaded", "no_such_module_for_the_bench")
    status, out, err = run_main(*TINY)
    assert status == 1
    assert out == ""
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("python -m bench: failed: threaded exited with status 1")
    assert "no_such_module_for_the_bench" in last
    (pid,) = re.findall(r"stopped asyncio \(pid (\d+), exit", err)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


# -- refusals: one line, exit 2 ---------------------------------------------------


def test_closed_target_port_is_a_one_line_error() -> None:
    port = closed_port()
    done = bench("--target", f"x=http://127.0.0.1:{port}")
    assert done.returncode == 2
    assert done.stdout == ""
    assert_one_line_error(
        done.stderr, f"cannot reach target x at http://127.0.0.1:{port}", "refused"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--concurrency", "0"), "--concurrency"),
        (("--concurrency", "many"), "'many' is not a whole number"),
        (("--concurrency", "5000"), "between 1 and 1000"),
        (("--sleep-seconds", "-1"), "--sleep-seconds"),
        (("--sleep-seconds", "nan"), "--sleep-seconds"),
        (("--duration", "0"), "above 0"),
        (("--workers", "1.5"), "--workers"),
        (("--rate", "inf"), "--rate"),
        (("--editions", "threaded,rust"), "choose from threaded,spawn,asyncio"),
        (("--editions", "asyncio,asyncio"), "twice"),
        (("--target", "no-equals-sign"), "NAME=URL"),
        (("--target", "x=ftp://127.0.0.1:1"), "only http://"),
        (("--target", "x=http://127.0.0.1:99999"), "not a valid URL"),
        (("--target", "x=http://127.0.0.1:1/sleep"), "origin only"),
        (
            ("--target", "x=http://127.0.0.1:1", "--target", "x=http://[::1]:1"),
            "used twice",
        ),
        (("--json", "/no/such/folder/out.json"), "does not exist"),
        (("--no-such-option",), "unrecognized arguments"),
        (("throughput", "--duration", "-2"), "--duration"),
        (("throughput", "--client", "curl"), "--client"),
        (("throughput", "--rounds", "0"), "--rounds"),
    ],
)
def test_bad_input_is_a_one_line_error(args: tuple[str, ...], needle: str) -> None:
    status, out, err = run_main(*args)
    assert status == 2
    assert out == ""
    assert_one_line_error(err, needle)


def test_plot_without_matplotlib_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(report, "plot_available", lambda: False)
    status, out, err = run_main("--plot", str(tmp_path / "latency.png"))
    assert status == 2
    assert out == ""
    assert_one_line_error(err, "pip install '.[plot]'")


# -- the pieces, without servers --------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 50) == 7
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_summary_counts_errors_but_times_only_answers() -> None:
    second = NS_PER_SECOND
    samples = [
        Sample("/", 0, second, 200),
        Sample("/", 0, 3 * second, 200),
        Sample("/", 0, 1000, None, "connection refused"),
    ]
    summary = summarise(samples)
    assert (summary.count, summary.errors) == (3, 1)
    assert (summary.p50, summary.max) == (1.0, 3.0)
    assert summary.throughput == pytest.approx(2 / 3)
    assert summarise([]).p50 is None


def test_spawn_model_sleeps_every_request_at_once_and_answers_at_once() -> None:
    spawn = QueueModel("spawn", 1.0, workers=4, concurrency=16)
    assert {spawn.sleep_latency(k) for k in range(1, 17)} == {1.0}
    assert spawn.first_free_worker() == 0
    assert spawn.hello_latency(0.5) == 0
    assert spawn.describe().startswith("spawn model: every /sleep at 1 x 1 s")


def test_spawn_is_started_as_threaded_without_a_pool() -> None:
    settings = servers.ServerSettings(sleep_seconds=1.0, workers=4)
    argv = settings.argv("spawn")
    assert argv[1:3] == ["-m", "threaded"]
    assert "--spawn" in argv
    assert "--workers" not in argv
    assert "--spawn" not in settings.argv("threaded")


def test_editions_default_to_the_three_designs_for_latency_only() -> None:
    latency = cli.build_latency_parser().parse_args([])
    throughput = cli.build_throughput_parser().parse_args([])
    assert latency.default_editions == ("threaded", "spawn", "asyncio")
    assert throughput.default_editions == ("threaded", "asyncio")


@pytest.mark.asyncio
async def test_the_footprint_watch_sees_a_thread_start() -> None:
    watch = FootprintWatch(os.getpid())
    await asyncio.sleep(0.05)
    before = threading.active_count()
    release = threading.Event()
    helpers = [threading.Thread(target=release.wait) for _ in range(3)]
    for helper in helpers:
        helper.start()
    await asyncio.sleep(0.05)
    release.set()
    for helper in helpers:
        helper.join()
    footprint = await watch.stop()
    assert footprint.peak_threads is not None
    assert footprint.peak_threads >= before + 3
    assert footprint.peak_rss_mib is not None
    assert footprint.peak_rss_mib > 5


def test_threaded_model_serves_in_waves_and_asyncio_at_once() -> None:
    threaded = QueueModel("threaded", 1.0, workers=4, concurrency=16)
    assert [threaded.sleep_latency(k) for k in (1, 4, 5, 16)] == [1, 1, 2, 4]
    assert threaded.first_free_worker() == 4
    assert threaded.hello_latency(0.5) == 3.5
    assert threaded.hello_latency(5.0) == 0
    # 5 sleeps on 4 workers: three workers are free after the first wave.
    assert QueueModel("threaded", 1.0, 4, 5).first_free_worker() == 1
    assert QueueModel("threaded", 1.0, 4, 3).first_free_worker() == 0
    asyncio_ = QueueModel("asyncio", 1.0, workers=4, concurrency=16)
    assert {asyncio_.sleep_latency(k) for k in range(1, 17)} == {1.0}
    assert asyncio_.hello_latency(0.5) == 0


def test_model_pairs_the_kth_prediction_with_the_kth_to_finish() -> None:
    model = QueueModel("threaded", 0.1, workers=1, concurrency=3)
    ms = NS_PER_SECOND // 1000
    measured = [
        Sample("/sleep", 0, 300 * ms),
        Sample("/sleep", 1, 100 * ms),
        Sample("/sleep", 2, 200 * ms),
    ]
    predicted = model.predict("/sleep", measured)
    assert [s.latency_ns for s in predicted] == [300 * ms, 100 * ms, 200 * ms]
    assert [s.start_ns for s in predicted] == [0, 1, 2]


def test_the_fit_times_each_sleep_from_its_send() -> None:
    """Two waves of two on a pool of 2, sent 50 ms late: timed from the start
    the first wave is 50 % over the model, timed from its send it fits."""
    model = QueueModel("threaded", 0.1, workers=2, concurrency=5)
    ms = NS_PER_SECOND // 1000
    measured = [
        Sample("/sleep", 0, 151 * ms, 200, sent_ns=50 * ms),  # wave 1: 101 ms
        Sample("/sleep", 0, 150 * ms, 200, sent_ns=50 * ms),  # wave 1: 100 ms
        Sample("/sleep", 0, 252 * ms, 200, sent_ns=50 * ms),  # wave 2: 202 ms
        Sample("/sleep", 0, 270 * ms, 200, sent_ns=51 * ms),  # wave 2: 219 ms, late
        Sample("/sleep", 0, 5 * ms, None, "connection refused"),  # never sent
    ]
    fit = model.fit(measured)
    assert fit is not None
    assert (fit.within, fit.answered) == (3, 4)
    assert fit.worst == pytest.approx(0.095)  # 219 ms for the model's 200
    assert model.fit(measured[4:]) is None


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:7878", Endpoint("127.0.0.1", 7878)),
        ("http://127.0.0.1:7878/", Endpoint("127.0.0.1", 7878)),
        ("http://localhost", Endpoint("localhost", 80)),
        ("http://[::1]:8080", Endpoint("::1", 8080)),
    ],
)
def test_endpoint_parses_an_origin(url: str, endpoint: Endpoint) -> None:
    assert Endpoint.parse(url) == endpoint
    assert Endpoint.parse(endpoint.url) == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "127.0.0.1:80",
        "https://127.0.0.1",
        "http://",
        "http://h:port",
        "http://h/x",
        "http://h/?q=1",
        "http://u:p@h/",
    ],
)
def test_endpoint_refuses_anything_else(url: str) -> None:
    with pytest.raises(BadTarget):
        Endpoint.parse(url)


def test_endpoint_knows_loopback() -> None:
    assert Endpoint("127.0.0.1", 1).loopback
    assert Endpoint("::1", 1).loopback
    assert not Endpoint("192.0.2.1", 1).loopback


WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:7879/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   250.10us  100.00us   5.20ms   90.00%
    Req/Sec    40.00k     1.00k   42.00k    70.00%
  Latency Distribution
     50%  220.00us
     75%  300.00us
     90%  400.00us
     99%    1.10ms
  40000 requests in 1.00s, 20.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec:  39990.50
Transfer/sec:     20.00MB
"""


def test_wrk_report_is_parsed() -> None:
    load = Load("asyncio", Endpoint("127.0.0.1", 7879), "close", 16, 1.0)
    run = parse_wrk(WRK_OUTPUT, load)
    assert (run.requests, run.errors, run.seconds) == (40000, 6, 1.0)
    assert run.requests_per_second == 39990.5
    assert run.p50 == pytest.approx(220e-6)
    assert run.p90 == pytest.approx(400e-6)
    assert run.p99 == pytest.approx(1.1e-3)
    assert run.max == pytest.approx(5.2e-3)
    command = wrk_command("wrk", load)
    assert command[-3:] == ["--header", "Connection: close", "http://127.0.0.1:7879/"]
    assert command[1:3] == ["--threads", "2"]  # as issue 8's targets were set


def test_the_wrk_thread_count_is_passed_on() -> None:
    load = Load("threaded", Endpoint("127.0.0.1", 7878), "keep-alive", 50, 2.0)
    assert wrk_command("wrk", replace(load, threads=1))[1:3] == ["--threads", "1"]
    assert "Connection: close" not in wrk_command("wrk", load)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("raw", "status", "length", "closes"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, 5, False),
        (
            b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            404,
            0,
            True,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nTrailer: 1\r\n\r\n",
            200,
            5,
            False,
        ),
        (b"HTTP/1.0 200 OK\r\n\r\nto the end", 200, 10, True),
    ],
)
async def test_response_reader(
    raw: bytes, status: int, length: int, closes: bool
) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    response = await read_response(reader)
    assert (response.status, response.body_length, response.closes) == (
        status,
        length,
        closes,
    )


def _run(name: str, settings: LatencySettings) -> EditionRun:
    """A synthetic run: what the bench would record on a perfect server."""
    model = settings.model(name)
    results = []
    for route, starts in (("/sleep", [0] * 4), ("/", [50, 100, 150])):
        samples = [Sample(route, s * 1_000_000, 1_000_000, 200) for s in starts]
        predicted = tuple(model.predict(route, samples))
        results.append(
            RouteResult(
                route,
                tuple(samples),
                summarise(samples),
                predicted,
                summarise(predicted),
            )
        )
    return EditionRun(
        name, "http://127.0.0.1:1", "test", True, tuple(results), 0.2, 0, model
    )


def test_table_and_json_shapes_without_a_server() -> None:
    settings = LatencySettings(concurrency=4, sleep_seconds=0.1, workers=2)
    runs = [_run("threaded", settings), _run("asyncio", settings)]
    table = report.latency_table(settings, runs)
    assert sum(bool(TABLE_ROW.match(line)) for line in table.splitlines()) == 8
    document = report.latency_json(settings, runs, "uvloop")
    json.dumps(document)  # serialisable as it is
    assert document["settings"] == {
        "concurrency": 4,
        "sleep_seconds": 0.1,
        "workers": 2,
        "rate": 20.0,
        "duration": None,
        "time_limit": 5.4,
    }


def test_plot_is_drawn(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    settings = LatencySettings(concurrency=4, sleep_seconds=0.1, workers=2)
    path = tmp_path / "latency.png"
    report.write_plot(path, settings, [_run("threaded", settings)])
    assert path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.asyncio
async def test_idle_growth_holds_answered_keep_alive_connections(
    server: RunningServer,
) -> None:
    """The --peers memory figure: N connections, one 200 each, held open."""
    endpoint = Endpoint("127.0.0.1", server.port)
    growth = await idle_growth(endpoint, server.process.pid, count=120)
    assert growth is not None
    assert -1.0 < growth < 50.0  # MiB: a real figure, not a placeholder
    assert server.process.poll() is None


@pytest.mark.asyncio
async def test_idle_growth_is_unknown_when_connections_are_refused() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    growth = await idle_growth(Endpoint("127.0.0.1", port), os.getpid(), count=3)
    assert growth is None


def test_the_peer_table_reports_idle_growth() -> None:
    table = ratio_table([], {"threaded": 19.0}, {"threaded": 1.25, "asyncio": None})
    assert "RSS growth with 1000 idle keep-alive connections held:" in table
    assert "threaded          +1.2 MiB" in table
    assert "asyncio           ?" in table


@pytest.mark.parametrize("arguments", [[], ["--help"], ["70000"], ["1", "2"]])
def test_a_peer_server_explains_its_one_argument(arguments: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.peers.stdlib_server", *arguments],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m bench.peers.stdlib_server PORT")
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not on PATH")
def test_the_rust_book_peer_is_built_and_serves_our_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The book's own server, built from bench/peers/rust_book.rs, answers our
    pages, and the start-up probe (a whole request: on a bare connect a worker
    panics and its thread ends) cost it none of its 4 workers: 4 ``/sleep``
    sleep at once."""
    monkeypatch.setenv("HELLO_SLEEP_SECONDS", "30")  # ended with the process
    peer = next(peer for peer in PEERS if peer.name == "rust-book")
    pages = Pages.load()
    events: list[str] = []
    with launched(peer, events.append) as running:
        assert running is not None, events
        port, pid = running.endpoint.port, running.pid
        for path, status, page in [
            ("/", 200, pages.hello),
            ("/x", 404, pages.not_found),
        ]:
            with socket.create_connection(("127.0.0.1", port), 10) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                raw = read_until_close(sock)
            assert raw.startswith(f"HTTP/1.1 {status} ".encode()), raw[:80]
            assert raw.endswith(b"\r\n\r\n" + page)
        sleepers = [socket.create_connection(("127.0.0.1", port), 10) for _ in range(4)]
        try:
            for sock in sleepers:
                sock.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
            deadline = time.monotonic() + 10
            while (asleep := _threads_asleep(pid)) < 4:
                assert time.monotonic() < deadline, f"{asleep} workers asleep, not 4"
                time.sleep(0.01)
        finally:
            for sock in sleepers:
                sock.close()
    assert "rust-book: building rust_book.rs with rustc -O" in events
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped


def _threads_asleep(pid: int) -> int:
    """Threads of ``pid`` in a timed sleep (``thread::sleep``), from /proc."""
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            count += "nanosleep" in (task / "wchan").read_text()
    return count


def test_the_peer_table_explains_the_rust_books_read_errors() -> None:
    def run(name: str) -> ThroughputRun:
        return ThroughputRun(
            name=name, url="http://127.0.0.1:1", mode="close", client="wrk",
            connections=50, seconds=10.0, requests=240_000, errors=240_000,
            requests_per_second=24_000.0, p50=None, p90=None, p99=None, max=None,
        )  # fmt: skip

    table = ratio_table([run("threaded"), run("rust-book")], {})
    assert "rust-book         same     close" in table
    assert " 1.00x " in table
    assert RUST_BOOK_NOTE in table
    assert RUST_BOOK_NOTE not in ratio_table([run("threaded")], {})


@pytest.mark.parametrize(
    "name",
    [
        peer.name
        for peer in PEERS
        if peer.source is None and peer.needs != "http.server"
    ],
)
def test_each_python_peer_serves_our_pages(name: str) -> None:
    """uvicorn, granian, aiohttp and gunicorn answer our routes with our pages
    (when installed: the ``peers`` extra), so the ratios compare like with like."""
    peer = next(peer for peer in PEERS if peer.name == name)
    if not installed(peer):
        pytest.skip(f"{peer.needs} is not installed (pip install '.[peers]')")
    pages = Pages.load()
    events: list[str] = []
    with launched(peer, events.append) as running:
        assert running is not None, events
        for path, status, page in [
            ("/", 200, pages.hello),
            ("/x", 404, pages.not_found),
        ]:
            with socket.create_connection(
                ("127.0.0.1", running.endpoint.port), 10
            ) as sock:
                head = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                sock.sendall(head.encode())
                raw = read_until_close(sock)
            assert raw.startswith(f"HTTP/1.1 {status} ".encode()), raw[:80]
            assert raw.endswith(page)


class StallingServer(HeadRecorder):
    """The recorder, but a connection's 20th request waits 0.3 s for its answer."""

    def before_answering(self, count: int) -> None:
        if count == 20:
            time.sleep(0.3)  # the stall the client must not hide


def test_a_fixed_rate_counts_the_queue_a_stall_makes() -> None:
    """Coordinated omission corrected: requests due during a 0.3 s stall are
    sent late, and their lateness is their latency. A closed-loop client
    would count one slow answer; here some 30 are slow, the first by ~0.3 s."""
    server = StallingServer()
    try:
        endpoint = Endpoint.parse(f"http://127.0.0.1:{server.port}")
        load = Load("stalling", endpoint, "keep-alive", 1, 2.0)
        run = asyncio.run(run_fixed_rate(load, 100.0))
    finally:
        server.close()
    assert run.requests == 200
    assert run.errors == 0
    assert run.offered == 100.0
    assert run.p50 is not None
    assert run.p50 < 0.05
    assert run.max is not None
    assert 0.25 < run.max < 1.0
    assert run.p99 is not None
    assert run.p99 > 0.15
    assert run.p999 is not None
    assert run.p999 >= run.p99


def test_a_fixed_rate_charges_the_queue_but_not_the_clients_lateness() -> None:
    """Due at 0 ms: sent at 0.8 ms on a free connection (the client's timer
    was late), answered at 1.0, the server took 0.2 ms. Sent at 5.1 ms because
    the previous answer only came at 5.0: the 5 ms it was held count too."""
    ms = 1_000_000
    assert server_time(0, -3 * ms, round(0.8 * ms), 1 * ms) == round(0.2 * ms)
    assert server_time(0, 5 * ms, round(5.1 * ms), 6 * ms) == round(5.9 * ms)
    # Held, then sent late by the client on top: only the hold counts.
    assert server_time(0, 2 * ms, 3 * ms, 4 * ms) == 3 * ms


def test_throughput_at_a_fixed_rate_prints_the_tails() -> None:
    done = bench(
        "throughput",
        "--editions",
        "asyncio",
        "--rate",
        "200",
        "--duration",
        "0.5",
        "--concurrency",
        "2",
        "--workload",
        "varied",
    )
    assert done.returncode == 0, done.stderr
    assert "a fixed rate: 200 requests a second over 2 connections" in done.stderr
    assert "Tails at 200 requests a second offered" in done.stdout
    rows = [line.split() for line in done.stdout.split("Tails at")[1].splitlines()]
    tails = [row for row in rows if row[:1] == ["asyncio"]]
    assert [row[1:3] for row in tails] == [
        ["varied", "keep-alive"],
        ["varied", "close"],
    ]
    for row in tails:
        assert 150 <= float(row[3]) <= 250  # achieved, about as offered
        assert int(row[4]) == 0


def test_the_core_cost_bench_times_every_workload(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["core_cost", "--requests", "300"])
    core_cost.main()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["same", "varied", "browser"]
    assert all(float(line.split()[1]) > 0 for line in lines)


def _measured(
    mode: str, rate: float, p99: float | None, errors: int = 0
) -> ThroughputRun:
    return ThroughputRun(
        "threaded", "http://127.0.0.1:1/", mode, "wrk", 2, 1.0, int(rate), errors,
        rate, 0.001, 0.002, p99, 0.01,
    )  # fmt: skip


def test_rounds_are_reported_as_their_medians_in_the_first_rounds_order() -> None:
    rounds = [
        [_measured("keep-alive", 100, 0.005), _measured("close", 50, None)],
        [_measured("keep-alive", 300, 0.001), _measured("close", 70, None)],
        [_measured("keep-alive", 200, 0.009, errors=1), _measured("close", 60, None)],
    ]
    keep_alive, close = median_of_rounds(rounds)
    assert (keep_alive.mode, close.mode) == ("keep-alive", "close")
    assert keep_alive.requests_per_second == 200  # not the mean of a noisy round
    assert keep_alive.p99 == 0.005
    assert close.p99 is None  # unknown in every round stays unknown
    assert keep_alive.errors == 1  # an error in any round shows
    assert keep_alive.requests == 600
    assert keep_alive.seconds == 3.0
    assert keep_alive.rounds == close.rounds == 3


def test_throughput_rounds_measure_everything_again_and_print_the_medians(
    tmp_path: Path,
) -> None:
    results = tmp_path / "rounds.json"
    done = bench(
        "throughput",
        "--editions",
        "asyncio",
        "--rounds",
        "2",
        "--duration",
        "0.3",
        "--concurrency",
        "2",
        "--client",
        "builtin",
        "--workload",
        "same",
        "--json",
        str(results),
    )
    assert done.returncode == 0, done.stderr
    assert "round 1 of 2" in done.stderr
    assert "round 2 of 2" in done.stderr
    assert "Medians of 2 rounds" in done.stdout
    runs = json.loads(results.read_text())["runs"]
    assert [(run["mode"], run["rounds"]) for run in runs] == [
        ("keep-alive", 2),
        ("close", 2),
    ]
    assert all(run["seconds"] > 0.45 for run in runs)  # both rounds' 0.3 s


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not on PATH")
def test_the_peers_are_measured_at_a_fixed_rate_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--peers --rate``: the built-in client makes the load, and the peers
    (here only http.server, which every Python has) are in the tails table."""
    stdlib = next(peer for peer in PEERS if peer.name == "stdlib")
    monkeypatch.setattr(peer_servers, "PEERS", (stdlib,))
    status, out, err = run_main(
        "throughput", "--peers", "--editions", "asyncio", "--rate", "100",
        "--duration", "0.3", "--concurrency", "2", "--workload", "same", "--quiet",
    )  # fmt: skip
    assert status == 0, err
    tails = out.split("Tails at 100 requests a second offered")[1]
    rows = [line.split()[:3] for line in tails.splitlines()]
    assert [row for row in rows if row[1:2] == ["same"]] == [
        ["asyncio", "same", "keep-alive"],
        ["asyncio", "same", "close"],
        ["stdlib", "same", "keep-alive"],
        ["stdlib", "same", "close"],
    ]


def test_two_servers_of_one_name_stay_two_rows_over_rounds() -> None:
    """A --target named like a peer: each is its own median, not one of both."""
    rounds = [
        [_measured("keep-alive", 100, None), _measured("keep-alive", 900, None)],
        [_measured("keep-alive", 120, None), _measured("keep-alive", 1100, None)],
    ]
    first, second = median_of_rounds(rounds)
    assert (first.requests_per_second, second.requests_per_second) == (110, 1000)
    assert median_of_rounds(rounds[:1]) == rounds[0]  # one round: its own rows
