"""The threaded edition end to end: ``python -m threaded`` on --port 0.

Servers are real subprocesses started by the ``server_factory`` fixture, which
reads the port from the start-up line and kills them by PID afterwards. We
wait on log lines and responses, never on fixed sleeps; every traffic loop is
bounded in count and time; only 127.0.0.1 is used. Timing bounds are generous:
the machine is small and shared.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ServerFactory
from support import (
    Response,
    ResponseReader,
    RunningServer,
    connect,
    iter_statuses,
    only_line,
    open_descriptors,
    pipeline_without_reading,
    read_until_close,
    request,
    thread_cpus,
    wait_for_count,
    wait_until,
)

from common.routes import Pages
from common.runtime.cli import Edition, parse_options
from threaded.parking import DEFAULT_PARKING, ParkingKind
from threaded.server import ServerStats, ThreadedServer

PAGES = Pages.load()
DELAY = 0.25  # --sleep-seconds for the timing tests
GET = b"GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n"
JOB_LINE = r"Worker \d+ got a job; executing\."
SLEEP_LINE = r"worker-\d+ sleeps [\d.]+ s for "
"""A worker has begun a /sleep (a job line alone may be a connection that has
not sent its request yet: new connections go to a worker at once)."""


def start(factory: ServerFactory, *args: str) -> RunningServer:
    return factory("threaded", *args)


def get(path: str = "/") -> bytes:
    return GET % path.encode()


def timed_response(sock: socket.socket, started: float) -> tuple[Response, float]:
    response = ResponseReader(sock).read()
    return response, time.monotonic() - started


def raw_exchange(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    """Send ``data`` (then FIN), read until the server closes; what it sent."""
    with connect(port, timeout=5.0) as sock:
        if data:
            sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_until_close(sock)


def reset_after(port: int, data: bytes) -> None:
    """Send ``data`` and slam the connection shut with a RST."""
    sock = connect(port, timeout=5.0)
    sock.sendall(data)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- the book's pages ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"), [((), "4 workers"), (("--workers", "1"), "1 worker")]
)
def test_start_up_line_names_the_edition_and_workers(
    server_factory: ServerFactory, args: tuple[str, ...], shown: str
) -> None:
    server = start(server_factory, *args)
    pattern = rf"Listening on http://127\.0\.0\.1:{server.port} \(threaded, {shown}\)$"
    server.wait_for_log(pattern)


def test_get_root_serves_the_hello_page(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    response = request(server.port, "/")
    assert (response.status, response.reason) == (200, "OK")
    assert response.body == PAGES.hello
    assert response.header("content-length") == str(len(PAGES.hello))
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert response.header("connection") is None  # HTTP/1.1: persistent
    server.wait_for_log(r'127\.0\.0\.1:\d+ "GET / HTTP/1\.1" 200 \d+ [\d.]+ms')


def test_unknown_path_gets_the_404_page(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    response = request(server.port, "/nope")
    assert response.status == 404
    assert response.body == PAGES.not_found


def test_sleep_takes_the_delay(server_factory: ServerFactory) -> None:
    server = start(server_factory, "--sleep-seconds", str(DELAY))
    started = time.monotonic()
    response = request(server.port, "/sleep")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert response.body == PAGES.hello
    assert DELAY <= elapsed < DELAY + 1.0


def test_head_has_the_headers_and_no_body(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head = reader.read(head=True)
        sock.sendall(get("/"))  # no stray body bytes before the next response
        full = reader.read()
    assert head.status == 200
    assert head.body == b""
    assert head.header("content-length") == str(len(PAGES.hello))
    assert full.status == 200
    assert full.body == PAGES.hello


def test_keep_alive_reuses_one_connection(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        for path, status in [("/", 200), ("/nope", 404), ("/", 200)]:
            sock.sendall(get(path))
            assert reader.read().status == status
    wait_for_count(server, r'"GET /\S* HTTP/1\.1"', 3)
    ports = re.findall(r"127\.0\.0\.1:(\d+) \"GET", server.log())
    assert len(set(ports)) == 1


def test_pipelined_requests_are_answered_in_order(
    server_factory: ServerFactory,
) -> None:
    server = start(server_factory)
    with connect(server.port) as sock:
        sock.sendall(get("/") + get("/nope") + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        reader = ResponseReader(sock)
        statuses = [reader.read().status, reader.read().status]
        head = reader.read(head=True)
    assert statuses == [200, 404]
    assert head.status == 200
    assert reader.buffer == b""


def test_connection_close_is_honoured(server_factory: ServerFactory) -> None:
    server = start(server_factory)
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 200
        assert response.header("connection") == "close"
        assert reader.at_eof()


# -- the book's contrast: /sleep holds a worker ----------------------------------


def test_two_workers_serve_four_sleeps_in_two_waves(
    server_factory: ServerFactory,
) -> None:
    """Book C6/D14: N workers, 2N slow requests → two waves; a fast one waits."""
    server = start(
        server_factory,
        "--workers", "2",
        "--sleep-seconds", str(DELAY),
        "--log-level", "debug",
    )  # fmt: skip
    sleepers = [connect(server.port) for _ in range(4)]
    fast = connect(server.port)
    try:
        started = time.monotonic()
        for sock in sleepers:
            sock.sendall(get("/sleep"))
        wait_for_count(server, SLEEP_LINE, 2)  # both workers are asleep
        fast.sendall(get("/"))
        with ThreadPoolExecutor(5) as executor:  # read all five as they come
            futures = [
                executor.submit(timed_response, sock, started)
                for sock in [*sleepers, fast]
            ]
            *slow, (quick, quick_done) = [future.result() for future in futures]
    finally:
        for sock in [*sleepers, fast]:
            sock.close()
    assert [response.status for response, _ in slow] == [200] * 4
    assert quick.status == 200
    waves = sorted(elapsed for _, elapsed in slow)
    assert all(DELAY <= elapsed < 2 * DELAY for elapsed in waves[:2]), waves
    assert all(2 * DELAY <= elapsed < 3.5 * DELAY for elapsed in waves[2:]), waves
    # GET / waited for a free worker: it was not answered before the first
    # wave ended (in FIFO order it even waits for the second).
    assert quick_done >= DELAY, (quick_done, waves)


def test_idle_keep_alive_connections_cost_no_worker(
    server_factory: ServerFactory,
) -> None:
    """200 idle keep-alives and 2 workers: a new GET / is still answered at once."""
    server = start(server_factory, "--workers", "2", "--no-access-log")
    idle: list[socket.socket] = []
    try:
        for index in range(250):
            sock = connect(server.port)
            idle.append(sock)
            if index < 200:  # 200 that made a request, 50 that never spoke
                sock.sendall(get("/"))
                assert ResponseReader(sock).read().status == 200
        started = time.monotonic()
        response = request(server.port, "/")
        assert response.status == 200
        assert time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_a_client_silent_past_the_accept_deferral_is_still_served(
    server_factory: ServerFactory,
) -> None:
    """The listener defers accept() until a request's first bytes arrive (Linux,
    about a second); a client that thinks longer than that is still served,
    and so is one that sends its head in pieces."""
    server = start(server_factory, "--no-access-log")
    with connect(server.port) as silent, connect(server.port) as slow:
        time.sleep(1.5)  # the client's think time, longer than the deferral
        silent.sendall(get("/"))
        assert ResponseReader(silent).read().status == 200
        head = get("/")
        slow.sendall(head[:5])
        time.sleep(0.2)
        slow.sendall(head[5:])
        assert ResponseReader(slow).read().status == 200


# -- shutdown ------------------------------------------------------------------


def test_the_shutdown_logs_the_books_worker_lines(
    server_factory: ServerFactory,
) -> None:
    """Book E6/E12 (what both editions promise on a signal is in
    test_editions): the pool's Drop says goodbye to each of its four workers
    (at debug level, where the book prints them)."""
    server = start(server_factory, "--log-level", "debug")
    assert request(server.port).status == 200
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    log = server.log()
    for worker_id in range(4):
        assert f"Shutting down worker {worker_id}" in log
        assert f"Worker {worker_id} disconnected; shutting down." in log


def blocked_signals(pid: int, tid: int) -> set[int]:
    """The signals a thread blocks, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    found = re.search(r"^SigBlk:\s*([0-9a-f]+)$", status, re.M)
    assert found is not None, status
    mask = int(found.group(1), 16)
    return {number for number in range(1, 65) if mask & (1 << (number - 1))}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_only_the_acceptor_thread_can_take_a_shutdown_signal(
    server_factory: ServerFactory,
) -> None:
    """The kernel gives a process's signal to any thread not blocking it, and
    Python handles it only in the main thread: a SIGTERM taken by a worker
    once left the acceptor asleep in select() and the server running."""
    server = start(server_factory, "--workers", "4")
    pid = server.process.pid
    threads = sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    workers = [tid for tid in threads if tid != pid]
    assert len(workers) == 4
    shutdown = {signal.SIGINT, signal.SIGTERM}
    assert not shutdown & blocked_signals(pid, pid)
    for tid in workers:
        assert shutdown <= blocked_signals(pid, tid)
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0


# -- robustness --------------------------------------------------------------------

MALFORMED: list[tuple[bytes, set[int]]] = [
    (b"\xff\xfe\xfd\r\n\r\n", {400}),
    (b"GET / HTTP/1.1\r\n\r\n", {400}),  # no Host
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", {505}),
    (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", {400}),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", {400}),
    (b"GET / HTTP/1.1\r\nHo", {400}),  # then EOF mid-head
    (b"", set()),  # connect, say nothing, leave
]


def test_a_thousand_bad_requests_kill_no_worker(server_factory: ServerFactory) -> None:
    """Book "panics on ordinary bad input": here each is an error status, no more."""
    server = start(
        server_factory,
        "--workers", "2",
        "--sleep-seconds", str(DELAY),
        "--no-access-log",
    )  # fmt: skip
    cases = [MALFORMED[index % len(MALFORMED)] for index in range(1000)]
    descriptors = open_descriptors(server)

    def attempt(index: int) -> bool:
        data, allowed = cases[index]
        if index % 10 == 9:
            reset_after(server.port, data or get("/"))
            return True
        # A complete head is answered and closed whether or not we half-close.
        half_close = index % 2 == 0 or not data.endswith(b"\r\n\r\n")
        answer = raw_exchange(server.port, data, half_close=half_close)
        statuses = set(iter_statuses(answer))
        return statuses <= allowed and (bool(statuses) or not allowed)

    started = time.monotonic()
    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(attempt, range(len(cases))))
    assert time.monotonic() - started < 30
    assert all(results), [cases[i][0][:40] for i, ok in enumerate(results) if not ok]
    # Both workers are alive: two /sleep finish together, in one wave.
    with ThreadPoolExecutor(2) as executor:
        begun = time.monotonic()
        responses = list(executor.map(lambda _: request(server.port, "/sleep"), [0, 1]))
        elapsed = time.monotonic() - begun
    assert [response.status for response in responses] == [200, 200]
    assert elapsed < 2 * DELAY, elapsed
    assert request(server.port, "/").status == 200
    assert "Traceback" not in server.log()
    # And no descriptor leaked: the server closes its side of every one of
    # them (the last few as it notices our closes).
    deadline = time.monotonic() + 5.0
    while open_descriptors(server) > descriptors:
        assert time.monotonic() < deadline, (open_descriptors(server), descriptors)
        time.sleep(0.01)


def test_a_full_queue_gets_503(server_factory: ServerFactory) -> None:
    server = start(
        server_factory,
        "--workers", "1",
        "--queue-size", "1",
        "--sleep-seconds", "0.5",
        "--log-level", "debug",
    )  # fmt: skip
    busy = connect(server.port)
    others = [connect(server.port) for _ in range(3)]
    try:
        busy.sendall(get("/sleep"))
        wait_for_count(server, SLEEP_LINE, 1)  # the one worker is asleep
        for sock in others:
            sock.sendall(get("/"))
        statuses = sorted(ResponseReader(sock).read().status for sock in others)
        assert ResponseReader(busy).read().status == 200
    finally:
        for sock in [busy, *others]:
            sock.close()
    assert statuses == [200, 503, 503]  # one queued, the rest turned away


def test_an_address_not_ours_is_exit_1() -> None:
    result = subprocess.run(  # 192.0.2.0/24 is TEST-NET-1: never a local address
        [sys.executable, "-m", "threaded", "--port", "0", "--host", "192.0.2.1"],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert result.returncode == 1
    only_line(result.stderr)


# -- in-process ---------------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="TCP_DEFER_ACCEPT is Linux's"
)
def test_the_listener_defers_accept_and_passes_on_nodelay() -> None:
    options = parse_options(
        Edition.THREADED, ["--port", "0", "--workers", "1", "--no-access-log"]
    )
    with ThreadedServer(options) as server:
        listener = server.listening_socket
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) > 0
        with connect(server.port) as client:
            client.sendall(get("/"))
            readable, _, _ = select.select([listener], [], [], 5.0)
            assert readable, "the connection never reached accept()"
            accepted, _ = listener.accept()  # the loop is not running: ours
            with accepted:
                nodelay = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert nodelay
                assert accepted.getblocking()  # MSG_DONTWAIT on each call instead


@contextlib.contextmanager
def serving_in_process(
    *args: str, parking: ParkingKind = DEFAULT_PARKING
) -> Iterator[ThreadedServer]:
    """A ThreadedServer on --port 0 run by a thread of this process; stopped
    (and its thread joined) when the block ends, even on failure. ``parking``
    chooses how parked connections wait."""
    options = parse_options(Edition.THREADED, ["--port", "0", "--no-access-log", *args])
    server = ThreadedServer(options, parking=parking)
    runner = threading.Thread(target=server.serve_forever)
    runner.start()
    try:
        yield server
    finally:
        server.request_stop()
        runner.join(10)
    assert not runner.is_alive()


def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """No reference cycle per connection: a cycle made every closed connection
    wait for the garbage collector, which cost ~5 us of CPU per request."""
    connections = 100
    with serving_in_process("--workers", "2") as server:
        assert request(server.port, "/").status == 200  # warm: caches filled
        gc.collect()
        gc.disable()
        try:
            for _ in range(connections):
                assert request(server.port, "/").status == 200
            unreachable = gc.collect()
        finally:
            gc.enable()
    # With a cycle per connection this is several objects per connection.
    assert unreachable < connections // 2, unreachable


LINUX_ONLY = pytest.mark.skipif(not hasattr(select, "epoll"), reason="Linux's")
PARKING = [
    pytest.param(ParkingKind.SELECTOR, id="selector"),
    pytest.param(ParkingKind.ONESHOT, id="oneshot", marks=LINUX_ONLY),
    pytest.param(ParkingKind.LEADER, id="leader", marks=LINUX_ONLY),
]


@pytest.mark.parametrize("parking", PARKING)
def test_parked_connections_both_ways(parking: ParkingKind) -> None:
    """Both ways of parking a connection between requests (Linux: a one-shot
    epoll set the workers re-arm; elsewhere: the acceptor's selector) serve
    keep-alive and pipelined requests, time out idle connections and stalled
    heads, and leave nothing behind once every connection has closed."""
    with serving_in_process(
        "--workers", "2", "--keep-alive-timeout", "0.3", "--header-timeout", "0.5",
        parking=parking,
    ) as server:  # fmt: skip
        with connect(server.port) as sock:
            reader = ResponseReader(sock)
            for _ in range(20):  # each one parked, then taken back
                sock.sendall(get("/"))
                assert reader.read().status == 200
            sock.sendall(get("/") + get("/nope"))
            assert [reader.read().status for _ in range(2)] == [200, 404]
            started = time.monotonic()
            assert reader.at_eof(timeout=3.0)  # idle: closed by the server
            assert 0.25 <= time.monotonic() - started < 1.5
        with connect(server.port) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # a head that never ends
            assert ResponseReader(sock).read().status == 408
        with connect(server.port) as idle:
            reader = ResponseReader(idle)
            idle.sendall(get("/"))
            assert reader.read().status == 200
            deadline = time.monotonic() + 5
            while server.stats().open > 1:  # the others are gone
                assert time.monotonic() < deadline, server.stats()
                time.sleep(0.01)
        # Nothing left behind: no deadline, no entry in the epoll map (the
        # acceptor notes what workers did when it next wakes: soon).
        deadline = time.monotonic() + 5
        while server.stats() != ServerStats(0, 0, 0, 0, 0, 0):
            assert time.monotonic() < deadline, server.stats()
            time.sleep(0.01)


def park_one_and_sleep_one(
    server: ThreadedServer, parked: socket.socket, busy: socket.socket
) -> ResponseReader:
    """One request on ``parked`` (answered, then parked), a ``/sleep`` on
    ``busy``; back once the server holds one of each. ``parked``'s reader."""
    reader = ResponseReader(parked)
    parked.sendall(get("/"))
    assert reader.read().status == 200
    busy.sendall(get("/sleep"))
    deadline = time.monotonic() + 5
    while (server.stats().parked, server.stats().busy) != (1, 1):
        assert time.monotonic() < deadline, server.stats()
        time.sleep(0.01)
    return reader


@pytest.mark.parametrize("parking", PARKING)
def test_a_request_waiting_for_a_worker_outlives_its_idle_deadline(
    parking: ParkingKind,
) -> None:
    """A parked connection's next request comes while the one worker sleeps,
    and its keep-alive deadline passes meanwhile: it is answered once the
    worker is free, not closed as idle (no worker watched it come)."""
    with (
        serving_in_process(
            "--workers", "1", "--keep-alive-timeout", "0.2",
            "--sleep-seconds", "1", parking=parking,
        ) as server,
        connect(server.port) as kept,
        connect(server.port) as busy,
    ):  # fmt: skip
        reader = park_one_and_sleep_one(server, kept, busy)
        kept.sendall(get("/"))
        started = time.monotonic()
        assert reader.read().status == 200
        assert time.monotonic() - started > 0.2  # its deadline had passed
        assert ResponseReader(busy).read().status == 200


@pytest.mark.parametrize("parking", PARKING)
def test_shutdown_closes_parked_connections_and_answers_the_busy_one(
    parking: ParkingKind,
) -> None:
    with (
        serving_in_process(
            "--workers", "2", "--sleep-seconds", "0.5", parking=parking
        ) as server,
        connect(server.port) as idle,
        connect(server.port) as busy,
    ):  # fmt: skip
        idle_reader = park_one_and_sleep_one(server, idle, busy)
        server.request_stop()
        response = ResponseReader(busy).read()
        assert response.status == 200
        assert response.header("connection") == "close"
        assert idle_reader.at_eof()  # closed without a word: it asked nothing


def test_in_process_server_stops_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    with serving_in_process("--workers", "2") as server:
        assert request(server.port, "/").status == 200
        with connect(server.port) as sock:
            sock.sendall(get("/") * 3)
            reader = ResponseReader(sock)
            assert [reader.read().status for _ in range(3)] == [200] * 3
    assert set(threading.enumerate()) == before
    with pytest.raises(ConnectionRefusedError):
        connect(server.port, timeout=2.0).close()


# The one-shot parking re-parks a written connection as the leader one does
# (the same park()), and this test takes 6 s: the plain one and the default.
@pytest.mark.parametrize("parking", [PARKING[0], PARKING[2]])
def test_clients_that_stop_reading_hold_no_worker(parking: ParkingKind) -> None:
    """A slow reader waits in the acceptor with its unsent answers, not in a
    worker: the one worker serves everyone else meanwhile, and
    --write-timeout drops the readers once they take nothing for that long."""
    with serving_in_process(
        "--workers", "1", "--write-timeout", "3", parking=parking
    ) as server:
        stuck = [pipeline_without_reading(server.port) for _ in range(4)]
        try:
            wait_until(
                lambda: server.stats().writing == 4,
                lambda: f"not all four are owed answers: {server.stats()}",
            )
            # Well before --write-timeout: nobody waits for the four.
            assert request(server.port, "/", timeout=1.5).status == 200
            assert server.stats().writing == 4
            wait_until(
                lambda: server.stats().open == 0,
                lambda: f"the silent readers were not dropped: {server.stats()}",
                timeout=10.0,
            )
        finally:
            for sock in stuck:
                sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="uses prlimit and /proc")
def test_running_out_of_file_descriptors_is_survived(
    server_factory: ServerFactory,
) -> None:
    """Book A4: an accept() error (EMFILE) stopped the book's server; not ours."""
    server = start(server_factory, "--no-access-log")
    pid = server.process.pid
    in_use = open_descriptors(server)
    limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 2, limits[1]))
    held = [connect(server.port) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(get("/"))
            assert ResponseReader(sock).read().status == 200
        with connect(server.port) as waiting:  # queued by the kernel, not accepted
            waiting.sendall(get("/"))
            server.wait_for_log(r"ERROR accept\(\) failed: .*Too many open files")
            held.pop().close()  # frees one descriptor
            response = ResponseReader(waiting).read()
        assert response.status == 200
    finally:
        for sock in held:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
    assert request(server.port, "/").status == 200


def test_answers_owed_to_a_slow_reader_at_shutdown_are_all_delivered() -> None:
    """Stopping, the acceptor hands what it was still sending to a worker,
    which sends it the plain way (blocking) within the grace period: the
    client that finally reads gets every answer whole, then the close."""
    with serving_in_process("--workers", "1", "--write-timeout", "5") as server:
        sock = pipeline_without_reading(server.port)
        with sock:
            wait_until(
                lambda: server.stats().writing == 1,
                lambda: f"no answers owed: {server.stats()}",
            )
            server.request_stop()
            sock.setblocking(True)
            sock.settimeout(10.0)
            reader = ResponseReader(sock)
            statuses = []
            while not reader.at_eof(timeout=5.0):  # bounded: 20,000 at most
                statuses.append(reader.read().status)
                assert len(statuses) <= 20_000
    assert len(statuses) > 1000  # more than one read's worth was owed
    assert set(statuses) == {200}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux's affinity")
def test_the_server_keeps_its_threads_on_one_cpu(server_factory: ServerFactory) -> None:
    """``--one-cpu``, the default: the acceptor and every worker on the same
    single CPU (the pool's hand-offs then never cross CPUs: README,
    Performance); ``--no-one-cpu`` leaves them where they were allowed."""
    allowed = os.sched_getaffinity(0)
    pinned = server_factory("threaded")
    assert request(pinned.port, "/").status == 200
    cpus = thread_cpus(pinned.process.pid)
    assert len(cpus) >= 1 + 4, cpus  # the main thread and the four workers
    assert all(len(each) == 1 and each == cpus[0] for each in cpus), cpus
    assert cpus[0] <= allowed
    free = server_factory("threaded", "--no-one-cpu")
    assert request(free.port, "/").status == 200
    assert all(each == allowed for each in thread_cpus(free.process.pid))
