"""Hostile clients, leaks, overload and shutdown under load — both editions.

Each test runs once per edition against a real server subprocess on
127.0.0.1 (``--port 0``), counts what the server holds from ``/proc``
(resident memory, descriptors, threads) and polls it with a deadline,
never a fixed sleep. Loads are small enough for a shared 2-core machine and
the latency bounds are generous: a median and a maximum over several
samples, not one lucky or unlucky request.

Linux only: everything here reads ``/proc/PID``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ServerFactory
from support import (
    MODULES,
    ResponseReader,
    RunningServer,
    connect,
    launch,
    open_descriptors,
    pipeline_without_reading,
    request,
    wait_until,
)

from common.runtime.resources import raise_open_file_limit

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="reads /proc/PID for memory, fds and threads"
)

GET = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
MiB = 1024 * 1024
TICKS = os.sysconf("SC_CLK_TCK")


# -- what the server process holds ---------------------------------------------


def rss(server: RunningServer) -> int:
    """Resident memory of the server process, in bytes (VmRSS)."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def threads(server: RunningServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/task"))


def cpu_seconds(server: RunningServer) -> float:
    """User plus system CPU time the server has used so far."""
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wait_for_baseline(server: RunningServer, fd_base: int, thread_base: int) -> None:
    wait_until(
        lambda: open_descriptors(server) == fd_base and threads(server) == thread_base,
        lambda: (
            f"fds {open_descriptors(server)} (baseline {fd_base}), threads"
            f" {threads(server)} (baseline {thread_base})"
        ),
    )


def settled_baseline(server: RunningServer) -> tuple[int, int]:
    """Descriptors and threads once a first request has come and gone."""
    assert request(server.port, "/").status == 200
    assert request(server.port, "/sleep").status == 200
    # The two connections above close on the server's side shortly after.
    previous = (-1, -1)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        now = (open_descriptors(server), threads(server))
        if now == previous:
            return now
        previous = now
        time.sleep(0.2)
    return previous


def timed_get(port: int) -> float:
    """Seconds for GET / on a fresh connection, answered in full."""
    started = time.perf_counter()
    response = request(port, "/", timeout=5.0)
    elapsed = time.perf_counter() - started
    assert response.status == 200
    return elapsed


def latencies(port: int, samples: int, spacing: float) -> list[float]:
    found = []
    for _ in range(samples):
        found.append(timed_get(port))
        time.sleep(spacing)  # pacing between samples, not waiting for a server
    return found


def assert_fast(found: list[float], what: str) -> None:
    """Median under 100 ms and every sample under 250 ms (a shared 2-core box)."""
    shown = ", ".join(f"{t * 1000:.0f}" for t in found)
    print(f"{what}: GET / ms: {shown}")
    assert statistics.median(found) < 0.100, f"{what}: median too slow: {shown} ms"
    assert max(found) < 0.250, f"{what}: slowest too slow: {shown} ms"


def assert_clean_log(server: RunningServer) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Unexpected error" not in log, log[-3000:]


def rst(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- hostile clients -------------------------------------------------------------


def test_slowloris_does_not_delay_other_clients(
    edition: str, server_factory: ServerFactory
) -> None:
    """200 connections dribbling a header byte every 0.5 s: GET / stays fast."""
    server = server_factory(edition, "--no-access-log", "--header-timeout", "30")
    slow = [connect(server.port, timeout=5.0) for _ in range(200)]
    stop = threading.Event()
    dribbled = Counter[str]()

    def dribble() -> None:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        while not stop.wait(0.5):
            for sock in slow:
                try:
                    sock.sendall(b"a")
                    dribbled["bytes"] += 1
                except OSError:
                    dribbled["dropped"] += 1

    thread = threading.Thread(target=dribble, daemon=True)
    try:
        thread.start()
        time.sleep(0.3)  # pacing: let the first dribble round go out
        found = latencies(server.port, samples=10, spacing=0.2)
        stop.set()
        thread.join(5.0)
        assert_fast(found, f"{edition}, 200 slowloris connections")
        assert dribbled["dropped"] == 0, dribbled
        assert dribbled["bytes"] >= 600, dribbled  # >= 3 rounds of 200 bytes
        # They were held, not dropped: each still has its request to finish.
        for sock in slow[:5]:
            sock.sendall(b"\r\n\r\n")
            assert ResponseReader(sock).read().status == 200
    finally:
        stop.set()
        for sock in slow:
            sock.close()
    assert_clean_log(server)


def test_a_thousand_idle_connections_do_not_delay_a_new_one(
    edition: str, server_factory: ServerFactory
) -> None:
    raise_open_file_limit()  # this process needs 1000+ descriptors too
    server = server_factory(edition, "--no-access-log", "--keep-alive-timeout", "30")
    before = open_descriptors(server)
    idle = []
    try:
        for _ in range(1000):
            idle.append(connect(server.port, timeout=5.0))
        wait_until(
            lambda: open_descriptors(server) >= before + 1000,
            lambda: (
                f"server holds {open_descriptors(server)} fds, "
                f"expected {before + 1000}+"
            ),
        )
        found = latencies(server.port, samples=10, spacing=0.05)
        assert_fast(found, f"{edition}, 1000 idle connections")
        assert open_descriptors(server) >= before + 1000  # still held, not dropped
    finally:
        for sock in idle:
            sock.close()
    wait_until(
        lambda: open_descriptors(server) == before,
        lambda: f"fds {open_descriptors(server)} after closing them, baseline {before}",
    )


def test_a_client_that_never_reads_is_bounded_and_dropped(
    edition: str, server_factory: ServerFactory
) -> None:
    """Pipelined requests, no reads: memory stays bounded, the client is dropped."""
    server = server_factory(
        edition, "--no-access-log", "--write-timeout", "1", "--sleep-seconds", "0.2"
    )
    fd_base, thread_base = settled_baseline(server)
    base_rss = peak_rss = rss(server)
    chunk = GET % b"/" * 2000  # ~70 kB of requests a send
    sent = 0
    outcome = "still connected"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 15.0:
            peak_rss = max(peak_rss, rss(server))
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                select.select([], [sock], [], 0.05)
            except (ConnectionResetError, BrokenPipeError) as error:
                outcome = f"dropped ({type(error).__name__})"
                break
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    growth = (peak_rss - base_rss) / MiB
    print(
        f"{edition}: sent {sent / MiB:.1f} MiB of requests in {elapsed:.1f} s,"
        f" {outcome}; RSS {base_rss / MiB:.1f} -> peak {peak_rss / MiB:.1f} MiB"
    )
    assert outcome.startswith("dropped"), f"not dropped after {elapsed:.1f} s"
    assert growth < 30, f"RSS grew {growth:.1f} MiB"
    assert request(server.port, "/").status == 200
    wait_for_baseline(server, fd_base, thread_base)
    assert_clean_log(server)


def test_four_clients_that_never_read_slow_no_one_down(
    edition: str, server_factory: ServerFactory
) -> None:
    """Four connections pipelining 20,000 GETs each and reading none of the
    answers: fresh GET / beside them are answered at once (threaded: no
    worker waits on them), and memory stays bounded."""
    server = server_factory(edition, "--no-access-log", "--write-timeout", "30")
    base_rss = peak_rss = rss(server)
    stuck = [pipeline_without_reading(server.port) for _ in range(4)]
    took: list[float] = []
    try:
        for _ in range(20):
            started = time.monotonic()
            assert request(server.port, "/", timeout=5.0).status == 200
            took.append(time.monotonic() - started)
            peak_rss = max(peak_rss, rss(server))
    finally:
        for sock in stuck:
            sock.close()
    growth = (peak_rss - base_rss) / MiB
    print(
        f"{edition}: GET / beside 4 silent pipeliners: median"
        f" {statistics.median(took) * 1000:.1f} ms, max {max(took) * 1000:.1f} ms;"
        f" RSS +{growth:.1f} MiB"
    )
    assert max(took) < 1.0, took  # not queued behind them (--write-timeout is 30 s)
    assert growth < 30, f"RSS grew {growth:.1f} MiB"
    assert_clean_log(server)


def test_resets_mid_request_and_mid_response_leak_nothing(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--sleep-seconds", "0.2")
    fd_base, thread_base = settled_baseline(server)

    for _ in range(30):  # half a head, then RST
        sock = connect(server.port, timeout=5.0)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: loc")
        rst(sock)
    sleepers = []
    for _ in range(20):  # a /sleep in progress when the client resets
        sock = connect(server.port, timeout=5.0)
        sock.sendall(GET % b"/sleep")
        sleepers.append(sock)
    wait_until(
        lambda: open_descriptors(server) >= fd_base + 20,
        lambda: f"the sleepers were not accepted: {open_descriptors(server)} fds",
    )
    time.sleep(0.05)  # pacing: reset while the 0.2 s sleeps are under way
    for sock in sleepers:
        rst(sock)
    for _ in range(10):  # pipelined responses being written when it resets
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(GET % b"/" * 500)
        rst(sock)

    assert request(server.port, "/").status == 200
    wait_for_baseline(server, fd_base, thread_base)
    assert_clean_log(server)


# -- descriptors -------------------------------------------------------------------


def test_the_open_file_limit_is_raised_at_start_up(
    edition: str, server_factory: ServerFactory
) -> None:
    """A soft limit of 1024 would run out before --max-connections 1024 does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))  # inherited by the child
    try:
        server = server_factory(edition, "--log-level", "debug")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    child_soft, _ = resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard > low:
        assert child_soft == hard
        server.wait_for_log(rf"DEBUG Open-file limit raised from {low} to {hard}")
    else:
        assert child_soft >= low
        server.wait_for_log(r"DEBUG Open-file limit")


@pytest.mark.parametrize(
    ("edition", "loop"),
    [("threaded", "-"), ("asyncio", "uvloop"), ("asyncio", "asyncio")],
)
def test_running_out_of_descriptors_is_survived_without_spinning(
    edition: str, loop: str, server_factory: ServerFactory
) -> None:
    """EMFILE on accept: no crash, no busy loop, serving resumes.

    threaded logs it once and pauses accepting for 0.5 s; uvloop (libuv)
    accepts the waiting connection into a reserved descriptor and closes it
    at once, saying nothing; the stdlib loop retries a second later, and the
    server logs it once.
    """
    args = ["--no-access-log"] + (["--loop", loop] if edition == "asyncio" else [])
    server = server_factory(edition, *args)
    pid = server.process.pid
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    held = [connect(server.port) for _ in range(2)]
    for sock in held:
        sock.sendall(GET % b"/")
        assert ResponseReader(sock).read().status == 200
    in_use = open_descriptors(server)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use, limits[1]))
    try:
        waiting = connect(server.port, timeout=5.0)
        waiting.sendall(GET % b"/")
        cpu_before = cpu_seconds(server)
        # The held connections are still served meanwhile.
        for sock in held:
            sock.sendall(GET % b"/")
            assert ResponseReader(sock).read().status == 200
        time.sleep(1.0)  # a measuring window for the CPU time, not a wait
        spent = cpu_seconds(server) - cpu_before
        held.pop().close()  # frees a descriptor
        try:
            outcome = f"{ResponseReader(waiting).read().status}"
        except (ConnectionError, OSError) as error:
            outcome = f"closed ({type(error).__name__})"
        waiting.close()
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
        for sock in held:
            sock.close()
    errors = re.findall(r" ERROR accept\(\) failed", server.log())
    print(
        f"{edition}/{loop}: waiting client -> {outcome}; CPU {spent:.2f} s in 1 s;"
        f" {len(errors)} error lines"
    )
    assert spent < 0.5, f"busy loop: {spent:.2f} s of CPU in 1 s"
    # A full answer, or (uvloop) a close with no byte sent: a reset or a FIN,
    # depending on whether libuv closed before or after the request arrived.
    closed = {"closed (ConnectionResetError)", "closed (ConnectionError)"}
    assert outcome == "200" or outcome in closed, outcome
    assert request(server.port, "/").status == 200
    # Logged once; uvloop handles it inside libuv and says nothing.
    assert len(errors) == (0 if loop == "uvloop" else 1), server.log()[-2000:]
    assert server.process.poll() is None


# -- overload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str  # "200", "503", ..., or closed / reset / truncated / timeout / refused
    detail: str = ""
    sent_at: float = math.inf
    """``time.monotonic()`` once the whole request was sent (inf: never)."""
    refused_at: float = math.inf
    """``time.monotonic()`` when the connection was refused (inf: it was not)."""


def one_request(port: int, path: bytes, timeout: float) -> Outcome:
    """A fresh connection, one request, the whole response (or how it failed)."""
    try:
        sock = connect(port, timeout=timeout)
    except (ConnectionRefusedError, ConnectionResetError) as error:
        # Refused, or reset while the handshake sat in a listener's backlog
        # as it closed: either way no request byte left, and the client knows.
        return Outcome("refused", type(error).__name__, refused_at=time.monotonic())
    with sock:
        try:
            sock.sendall(GET % path)
        except ConnectionResetError as error:
            # The same reset, come after connect() returned: still no byte left.
            return Outcome("refused", type(error).__name__, refused_at=time.monotonic())
        except BrokenPipeError as error:
            return Outcome("unsent", type(error).__name__)
        sent_at = time.monotonic()
        reader = ResponseReader(sock)
        try:
            return Outcome(str(reader.read().status), sent_at=sent_at)
        except TimeoutError:
            return Outcome("timeout", repr(reader.buffer[:80]), sent_at)
        except (ConnectionError, OSError) as error:
            got = reader.buffer
            if got:
                return Outcome("truncated", f"{len(got)} bytes, {error!r}", sent_at)
            if isinstance(error, ConnectionResetError):
                return Outcome("reset", "no byte, then RST", sent_at)
            return Outcome("closed", "no byte, then EOF", sent_at)


def test_twice_max_connections_at_once(
    edition: str, server_factory: ServerFactory
) -> None:
    """100 clients against --max-connections 50: 200 or 503 or a clean close."""
    server = server_factory(
        edition, "--no-access-log", "--max-connections", "50", "--sleep-seconds", "0.2"
    )
    base_rss = rss(server)
    start = threading.Barrier(100)

    def client(_: int) -> Outcome:
        start.wait(10)
        return one_request(server.port, b"/sleep", timeout=15.0)

    with ThreadPoolExecutor(100) as executor:
        outcomes = list(executor.map(client, range(100)))
    counts = Counter(o.kind for o in outcomes)
    growth = (rss(server) - base_rss) / MiB
    print(f"{edition}: {dict(counts)}; RSS grew {growth:.1f} MiB")
    bad = [o for o in outcomes if o.kind not in {"200", "503", "closed", "reset"}]
    assert not bad, f"{dict(counts)}: {bad[:5]}"
    assert counts["200"] >= 50, dict(counts)  # every admitted one was served
    assert server.process.poll() is None
    assert growth < 30, f"RSS grew {growth:.1f} MiB"
    assert request(server.port, "/").status == 200
    assert_clean_log(server)


@pytest.mark.parametrize(
    ("cap", "attackers"), [("100", 400), (None, 3000)], ids=["cap-100", "default-cap"]
)
def test_slowloris_past_the_limit_locks_no_user_out(
    edition: str, cap: str | None, attackers: int, server_factory: ServerFactory
) -> None:
    """Connections holding incomplete heads are shed (408) before anyone gets
    503; and the default limit follows the open-file limit, not 1024."""
    raise_open_file_limit()  # this process holds the attackers' sockets
    args = ["--no-access-log", "--header-timeout", "60"]
    server = server_factory(
        edition, *args, *(["--max-connections", cap] if cap else [])
    )
    held: list[socket.socket] = []
    statuses: list[int] = []
    try:
        for index in range(attackers):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10.0)
            held.append(sock)
            with contextlib.suppress(OSError):  # shed already
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            if index % 20 == 19:
                # Paced, as slowhttptest opens them (-r, 50 a second by
                # default): a burst would be busy in the workers, not waiting.
                time.sleep(0.01)
            if index % 100 == 99:
                statuses.append(request(server.port, "/").status)
        statuses += [request(server.port, "/").status for _ in range(10)]
    finally:
        for sock in held:
            sock.close()
    assert statuses == [200] * len(statuses)
    assert_clean_log(server)


# -- shutdown under load -------------------------------------------------------------


def test_sigterm_under_load_loses_nothing(
    edition: str, server_factory: ServerFactory
) -> None:
    """Every request sent before the shutdown began is answered in full.

    16 client threads send GET /, GET /nope and GET /sleep on fresh
    connections; SIGTERM arrives mid-way. A request whose bytes were all
    sent before the signal must get its complete response. After the
    signal a client may instead be refused (the listener is closed, or it
    closed with the connection still queued and reset it) or, if
    its connection was accepted but its request had not arrived when the
    server closed it, see the connection close without a byte (RFC 9112
    §9.6: the client may retry). Nothing may ever be truncated or hang.
    """
    grace = 5.0
    server = server_factory(
        edition,
        "--no-access-log",
        "--sleep-seconds",
        "0.3",
        "--shutdown-timeout",
        str(grace),
    )
    port = server.port
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        paths = [b"/", b"/", b"/sleep"] if number % 2 else [b"/", b"/nope"]
        for turn in range(2000):
            outcome = one_request(port, paths[turn % len(paths)], timeout=grace + 5)
            with lock:
                outcomes.append(outcome)
            if outcome.kind == "refused":
                return

    workers = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for worker in workers:
        worker.start()
    wait_until(
        lambda: sum(o.kind == "200" for o in outcomes) >= 100,
        lambda: f"load did not get going: {Counter(o.kind for o in outcomes)}",
    )
    signalled = time.monotonic()
    server.signal(signal.SIGTERM)
    status = server.wait(timeout=grace + 5)
    exited = time.monotonic() - signalled
    for worker in workers:
        worker.join(grace + 10)

    answers = {"200", "404"}
    before = [o for o in outcomes if o.sent_at < signalled]
    after = [o for o in outcomes if signalled <= o.sent_at < math.inf]
    refused = sum(o.kind == "refused" for o in outcomes)
    reset = sum(o.detail == "ConnectionResetError" for o in outcomes)
    unanswered = [o for o in after if o.kind in {"closed", "reset"}]
    lost = [o for o in before if o.kind not in answers] + [
        o for o in outcomes if o.kind in {"truncated", "timeout", "unsent"}
    ]
    report = (
        f"{edition}: sent {len(before) + len(after)} ({len(before)} before SIGTERM,"
        f" {len(after)} after), answered"
        f" {sum(o.kind in answers for o in outcomes)}, refused {refused}"
        f" ({reset} reset from the backlog), closed"
        f" unanswered after SIGTERM {len(unanswered)}, lost {len(lost)}"
        f" {dict(Counter(o.kind for o in lost))}; exit {status} after"
        f" {exited:.2f} s"
    )
    print(report)
    assert not lost, f"{report}: {lost[:5]}"
    assert refused >= 1, report  # the listener did close
    early = [o for o in outcomes if o.refused_at < signalled]
    assert not early, f"{report}: refused before SIGTERM: {early[:5]}"
    assert status == 0, report
    assert exited < grace, report


# -- signals ------------------------------------------------------------------------

# A thread of the server's process that does not block SIGTERM, and that takes
# it once a line arrives on stdin: the C-level handler then runs on that
# thread, and the main thread, asleep in epoll, gets no EINTR.
_SIGNAL_FROM_ANOTHER_THREAD = """
import runpy, signal, sys, threading

def take_sigterm_here():
    sys.stdin.readline()
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

threading.Thread(target=take_sigterm_here, daemon=True).start()
runpy.run_module("{module}", run_name="__main__", alter_sys=True)
"""


def is_minus_one(register: str) -> bool:
    """Whether a ``/proc/PID/task/TID/syscall`` argument holds the int -1.

    The kernel prints each argument as the whole register, in hex. An int
    argument of -1 fills its low 32 bits, and the upper 32 hold whatever the
    C library left there: Debian 12's glibc (2.36) passes the int as it is,
    ``0xffffffff``; the newer glibc (2.43) in the Debian root where CI runs
    3.14 and 3.15 sign-extends it to a long, ``0xffffffffffffffff``. The C
    library decides, not Python: that root's 3.13 prints the long form too.
    Either is -1, read as a signed int of 32 or of 64 bits.
    """
    value = int(register, 16)
    return value in {(1 << 32) - 1, (1 << 64) - 1}


def wait_until_asleep_in_epoll(pid: int, timeout: float = 5.0) -> None:
    """Poll until the main thread sleeps in epoll with no timeout (bounded).

    A wait with a timeout (the pool's stall check) would wake it anyway. The
    wait channel reads ``0`` while the thread runs, and always on a kernel
    that hides it: only the latter is a reason to skip.
    """
    task = Path(f"/proc/{pid}/task/{pid}")
    deadline = time.monotonic() + timeout
    channels: set[str] = set()
    while True:
        channel = (task / "wchan").read_text()
        channels.add(channel)
        call = (task / "syscall").read_text().split()
        # epoll_wait and epoll_pwait both take the timeout as their 4th argument.
        if "epoll" in channel and len(call) > 4 and is_minus_one(call[4]):
            return
        if time.monotonic() > deadline:
            if channels == {"0"}:
                pytest.skip("this kernel does not show wait channels")
            raise AssertionError(f"the main thread is not asleep in epoll: {call}")
        time.sleep(0.01)


def test_a_signal_taken_while_the_server_sleeps_still_stops_it(edition: str) -> None:
    """The main thread wakes for a signal it did not receive itself.

    Python runs a handler in the main thread, and only when that thread runs.
    A signal whose C handler runs elsewhere (another thread, or the main
    thread just before it enters epoll) leaves the server asleep unless the
    signal itself wakes it: the threaded edition's acceptor did not, and
    once in CI never logged ``Shutting down.``.
    """
    code = _SIGNAL_FROM_ANOTHER_THREAD.format(module=MODULES[edition])
    command = [sys.executable, "-c", code, "--port", "0"]
    server = launch(edition, command, stdin=subprocess.PIPE)
    try:
        # Connection: close: the server closes it, and then nothing wakes
        # its main thread once that has gone back to epoll.
        close = "Host: localhost\r\nConnection: close\r\n"
        assert request(server.port, headers=close).status == 200
        wait_until_asleep_in_epoll(server.process.pid)
        stdin = server.process.stdin
        assert stdin is not None
        stdin.write("now\n")
        stdin.flush()
        server.wait_for_log(r"Shutting down\.", timeout=5.0)
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
