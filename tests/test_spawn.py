"""``python -m threaded --spawn``: a thread per connection (the book's Listing 21-11).

What the threaded edition promises on its pool it promises here too (the
conformance cases and byte parity run against it as well: ``test_conformance``,
``test_parity``); these tests check what is its own — a thread for every
connection, gone when the connection is, and a shutdown that joins them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import ServerFactory
from support import (
    ResponseReader,
    RunningServer,
    connect,
    only_line,
    request,
    wait_for_count,
    wait_until,
)

DELAY = 0.3
SLEEP = b"GET /sleep HTTP/1.1\r\nHost: localhost\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def threads(server: RunningServer) -> int:
    """The server process's thread count, as /proc shows it."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line")


def spawn(factory: ServerFactory, *args: str) -> RunningServer:
    return factory("threaded", "--spawn", "--sleep-seconds", str(DELAY), *args)


def test_the_start_up_line_names_the_design(server_factory: ServerFactory) -> None:
    server = spawn(server_factory)
    server.wait_for_log(r"\(threaded, a thread per connection\)$")
    assert request(server.port, "/").status == 200


@pytest.mark.parametrize("flag", [["--workers", "3"], ["--queue-size", "8"]])
def test_spawn_with_a_pool_setting_is_a_usage_error(flag: list[str]) -> None:
    command = [sys.executable, "-m", "threaded", "--spawn", "--port", "0", *flag]
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == 2
    assert f"{flag[0]} sizes the pool, and --spawn runs none" in only_line(done.stderr)


def _sleep_on(port: int, answers: list[tuple[float, int]]) -> None:
    started = time.monotonic()
    with connect(port) as sock:
        sock.sendall(SLEEP)
        status = ResponseReader(sock).read().status
    answers.append((time.monotonic() - started, status))


def test_twenty_sleeps_take_one_delay_on_twenty_threads_then_the_threads_go(
    server_factory: ServerFactory,
) -> None:
    server = spawn(server_factory, "--log-level", "debug")
    baseline = threads(server)
    answers: list[tuple[float, int]] = []
    clients = [
        threading.Thread(target=_sleep_on, args=(server.port, answers))
        for _ in range(20)
    ]
    started = time.monotonic()
    for client in clients:
        client.start()
    wait_for_count(server, r"Connection-\d+ sleeps", 20)  # all twenty at once
    during = threads(server)
    for client in clients:
        client.join(10)
    elapsed = time.monotonic() - started
    assert [status for _, status in answers] == [200] * 20
    assert during >= baseline + 20
    # Side by side, not queued: a pool of 4 would take five delays.
    assert elapsed < 2.5 * DELAY, answers
    wait_until(
        lambda: threads(server) == baseline,
        lambda: f"{threads(server)} threads, {baseline} before the sleeps",
    )


def test_one_thread_serves_a_connection_for_its_whole_life(
    server_factory: ServerFactory,
) -> None:
    server = spawn(server_factory, "--log-level", "debug")
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        for _ in range(5):
            sock.sendall(GET)
            assert reader.read().status == 200
        assert len(wait_for_count(server, r"Connection-\d+ serves ", 1)) == 1
    assert request(server.port, "/").status == 200
    wait_for_count(server, r"Connection-2 serves ", 1)


def test_an_idle_connection_closes_after_the_keep_alive_timeout(
    server_factory: ServerFactory,
) -> None:
    server = spawn(server_factory, "--keep-alive-timeout", "0.3")
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(GET)
        assert reader.read().status == 200
        started = time.monotonic()
        assert reader.at_eof(timeout=3)
        assert time.monotonic() - started < 2.0


def test_an_unfinished_head_gets_408(server_factory: ServerFactory) -> None:
    server = spawn(server_factory, "--header-timeout", "0.3")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: loc")
        response = ResponseReader(sock).read()
    assert response.status == 408
    assert request(server.port, "/").status == 200


def test_past_max_connections_a_newcomer_gets_503(
    server_factory: ServerFactory,
) -> None:
    """The bound the book's version lacks; the threads already serving are
    not disturbed."""
    server = spawn(server_factory, "--max-connections", "2")
    first, second = connect(server.port), connect(server.port)
    try:
        for sock in (first, second):
            sock.sendall(GET)
            assert ResponseReader(sock).read().status == 200
        refused = request(server.port, "/")
        assert refused.status == 503
        assert refused.header("retry-after") == "1"
        first.sendall(GET)
        assert ResponseReader(first).read().status == 200
    finally:
        first.close()
        second.close()
    wait_until(
        lambda: request(server.port, "/").status == 200,
        lambda: "still refusing after the two connections closed",
    )


def test_sigterm_answers_every_sleep_in_flight_joins_the_threads_and_exits_0(
    server_factory: ServerFactory,
) -> None:
    server = spawn(server_factory, "--log-level", "debug")
    idle = connect(server.port)  # an idle keep-alive connection: closed at once
    idle.sendall(GET)
    idle_reader = ResponseReader(idle)
    assert idle_reader.read().status == 200
    answers: list[tuple[float, int]] = []
    clients = [
        threading.Thread(target=_sleep_on, args=(server.port, answers))
        for _ in range(10)
    ]
    for client in clients:
        client.start()
    wait_for_count(server, r"Connection-\d+ sleeps", 10)
    server.signal(signal.SIGTERM)
    assert server.wait(10) == 0
    for client in clients:
        client.join(5)
    assert [status for _, status in answers] == [200] * 10
    assert idle_reader.at_eof(timeout=2)
    idle.close()
    assert "Traceback" not in server.log()
