"""What both editions promise a user of the command line, tested once over both.

Each test starts a real server subprocess of ``edition`` on ``--port 0`` (the
``edition`` fixture runs it once per edition) and checks what a user sees:
the status codes, the headers, the log lines and the exit status.
"""

from __future__ import annotations

import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
from conftest import ServerFactory
from support import (
    MODULES,
    ResponseReader,
    connect,
    count_lines,
    iter_statuses,
    only_line,
    read_until_close,
    request,
    wait_for_count,
    wait_until,
)

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
SLEEP_LOGGED = r" sleeps [\d.]+ s"
"""The debug line each edition logs as a request starts its delay."""


@pytest.mark.parametrize(
    "second", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_a_second_signal_exits_at_once(
    edition: str, second: signal.Signals, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--sleep-seconds", "30", "--log-level", "debug")
    with connect(server.port) as sock:
        sock.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        server.wait_for_log(SLEEP_LOGGED)
        server.signal(signal.SIGTERM)
        server.wait_for_log(r"Shutting down\.")
        started = time.monotonic()
        server.signal(second)
        assert server.wait(5) == 128 + second
        assert time.monotonic() - started < 3.0
        assert ResponseReader(sock).at_eof(timeout=2)
    server.wait_for_log(rf"{second.name} again: exiting at once\.")
    assert "Traceback" not in server.log()


def test_max_requests_2_is_the_books_take_2(
    edition: str, server_factory: ServerFactory
) -> None:
    """Book E7: two responses, ``Shutting down.``, the port closed, exit 0."""
    server = server_factory(edition, "--max-requests", "2")
    with connect(server.port) as sock:
        reader = ResponseReader(sock)
        sock.sendall(GET)
        first = reader.read()
        sock.sendall(GET)
        second = reader.read()
        assert reader.at_eof()
    assert (first.status, second.status) == (200, 200)
    assert first.header("connection") is None
    assert second.header("connection") == "close"  # the server is stopping
    assert server.wait(10) == 0
    server.wait_for_log(r"INFO Shutting down\.$")
    assert server.log().splitlines()[-1].endswith("Shutting down.")
    assert len(re.findall(r'"GET / HTTP/1\.1" 200', server.log())) == 2
    with pytest.raises(ConnectionRefusedError):
        connect(server.port, timeout=2.0).close()


def test_a_port_in_use_is_one_line_and_exit_1(
    edition: str, server_factory: ServerFactory
) -> None:
    first = server_factory(edition)
    done = subprocess.run(
        [sys.executable, "-m", MODULES[edition], "--port", str(first.port)],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 1
    line = only_line(done.stderr)
    assert "cannot listen on" in line
    assert str(first.port) in line
    assert "Traceback" not in done.stderr
    assert request(first.port).status == 200  # the first one is unharmed


# -- deadlines and limits ----------------------------------------------------------


def test_a_stalled_head_gets_408(edition: str, server_factory: ServerFactory) -> None:
    server = server_factory(edition, "--header-timeout", "0.3")
    with connect(server.port) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # no blank line
        reader = ResponseReader(sock)
        response = reader.read()
        elapsed = time.monotonic() - started
        assert response.status == 408
        assert response.header("connection") == "close"
        assert reader.at_eof()
    assert 0.3 <= elapsed < 1.5


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123", 405),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123", 200),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            405,
        ),
    ],
    ids=["post", "get", "chunked"],
)
def test_a_stalled_body_after_its_answer_gets_no_second_response(
    edition: str, request_head: bytes, status: int, server_factory: ServerFactory
) -> None:
    """One response per request: the answer goes out once the head is read;
    when the rest of the body then does not come, the header deadline ends
    the connection with no 408, which would be a second response."""
    server = server_factory(edition, "--header-timeout", "0.3")
    with connect(server.port) as sock:
        sock.sendall(request_head)
        started = time.monotonic()
        raw = read_until_close(sock)
        elapsed = time.monotonic() - started
    assert list(iter_statuses(raw)) == [status]
    assert 0.3 <= elapsed < 3.0  # closed by the deadline, not left open
    assert " 408 " not in server.log()


def test_empty_lines_do_not_hold_a_connection_open(
    edition: str, server_factory: ServerFactory
) -> None:
    """RFC 9112 §2.2's empty lines before a request are ignored, but they run
    the header deadline: a client sending one every 0.1 s is closed once it
    passes, with no response (they were no request)."""
    server = server_factory(
        edition, "--keep-alive-timeout", "0.3", "--header-timeout", "0.6"
    )
    with connect(server.port) as sock:
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < 4.0:
            try:
                sock.sendall(b"\r\n")
            except OSError:
                break
            closed = bool(select.select([sock], [], [], 0.1)[0])
        elapsed = time.monotonic() - started
        assert closed, "still open after 4 s of empty lines"
        assert read_until_close(sock) == b""
    assert 0.6 <= elapsed < 2.5


def test_a_slowloris_head_gets_408_on_time(
    edition: str, server_factory: ServerFactory
) -> None:
    """The header deadline runs from the first byte; trickling does not reset it."""
    server = server_factory(edition, "--header-timeout", "0.4")
    head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    with connect(server.port) as sock:
        started = time.monotonic()
        for byte in head:  # one byte every 20 ms: at most 4.5 s
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.02)[0]:
                break
        elapsed = time.monotonic() - started
        reader = ResponseReader(sock)
        response = reader.read()
        assert reader.at_eof()
    assert response.status == 408
    assert response.header("connection") == "close"
    assert 0.4 <= elapsed < 1.5


SLEEP = b"GET /sleep HTTP/1.1\r\nHost: localhost\r\n\r\n"
TWO_AT_MOST = (
    "--max-connections",
    "2",
    "--sleep-seconds",
    "30",
    "--log-level",
    "debug",
)
"""Two connections at most, and a /sleep that keeps one busy: its start is logged."""


def test_connections_beyond_the_limit_get_503_when_all_are_busy(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, *TWO_AT_MOST)
    held = [connect(server.port) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(SLEEP)
        wait_for_count(server, SLEEP_LOGGED, 2)
        response = request(server.port, "/")
        assert response.status == 503
        assert response.header("retry-after") == "1"
        assert response.header("connection") == "close"
        with connect(server.port) as refused:
            refused.sendall(GET)
            reader = ResponseReader(refused)
            assert reader.read().status == 503
            assert reader.at_eof()
        # Every response is logged, refusals included (no request line: "-").
        wait_for_count(server, r'127\.0\.0\.1:\d+ "-" 503 ', 2)
        held.pop().close()  # its sleep ends with it
        deadline = time.monotonic() + 5.0
        while (status := request(server.port, "/").status) == 503:
            assert time.monotonic() < deadline, "the freed slot was never reused"
        assert status == 200
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("kind", ["idle", "incomplete head"])
def test_at_the_limit_a_connection_doing_nothing_makes_room(
    edition: str, kind: str, server_factory: ServerFactory
) -> None:
    """A newcomer is not refused while a connection is only waiting: the
    oldest idle one is closed silently, else an incomplete head gets 408."""
    server = server_factory(edition, *TWO_AT_MOST)
    with connect(server.port) as busy, connect(server.port) as waiting:
        busy.sendall(SLEEP)
        wait_for_count(server, SLEEP_LOGGED, 1)
        reader = ResponseReader(waiting)
        if kind == "idle":
            waiting.sendall(GET)
            assert reader.read().status == 200
        else:
            waiting.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")  # no blank line
        # The newcomer. A connection is busy, not waiting, until its worker
        # has parked it (threaded), so allow it a moment: a few tries.
        deadline = time.monotonic() + 2.0
        while (status := request(server.port, "/").status) == 503:
            assert time.monotonic() < deadline, "refused while a connection waited"
        assert status == 200
        if kind == "incomplete head":
            assert reader.read().status == 408
        assert reader.at_eof()  # closed, and nothing (more) said


def test_at_the_limit_connections_closing_after_their_answer_make_room(
    edition: str, server_factory: ServerFactory
) -> None:
    """A connection answered and closing in stages (lingering, its client
    still holding its end) does not lock newcomers out: it makes room."""
    server = server_factory(edition, "--max-connections", "2")
    lingering = [connect(server.port) for _ in range(2)]
    try:
        for sock in lingering:
            sock.sendall(b"BAD\r\n\r\n")
            assert list(iter_statuses(read_until_close(sock))) == [400]
        # Our FIN can reach the client a moment before the server has moved
        # the connection to its closing stage (longer on a loaded machine);
        # 1.5 s is still within the 2 s linger, after which it would go anyway.
        wait_until(
            lambda: request(server.port).status == 200,
            lambda: "newcomers still refused while two connections linger",
            timeout=1.5,
        )
        for _ in range(3):
            assert request(server.port).status == 200
    finally:
        for sock in lingering:
            sock.close()


def test_a_408_does_not_spend_max_requests(
    edition: str, server_factory: ServerFactory
) -> None:
    """--max-requests counts answers to requests: a 408 for a head that
    never came is not one, in every edition."""
    server = server_factory(edition, "--max-requests", "2", "--header-timeout", "0.3")
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")  # never finished
        assert list(iter_statuses(read_until_close(sock))) == [408]
    assert request(server.port).status == 200
    assert request(server.port).status == 200
    assert server.wait(10) == 0


def test_an_idle_keep_alive_connection_is_closed(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--keep-alive-timeout", "0.3")
    with connect(server.port) as used, connect(server.port) as silent:
        reader = ResponseReader(used)
        used.sendall(GET)
        assert reader.read().status == 200
        started = time.monotonic()
        assert reader.at_eof(timeout=3.0)
        assert 0.25 <= time.monotonic() - started < 1.5
        assert ResponseReader(silent).at_eof(timeout=3.0)


@dataclass(frozen=True)
class Pace:
    """How a slow client reads, and how long the test lets it."""

    write_timeout: str
    read_size: int
    pause: float
    seconds: float
    enough: int


@pytest.mark.parametrize(
    "pace",
    [Pace("0.3", 65536, 0.05, 10.0, 5_500_000), Pace("2", 10_000, 0.1, 5.0, 400_000)],
    ids=["64kB-every-50ms", "10kB-every-100ms"],
)
def test_a_client_reading_slowly_but_steadily_is_not_cut_off(
    edition: str, pace: Pace, server_factory: ServerFactory
) -> None:
    """``--write-timeout`` drops a client that takes nothing for that long, not
    one whose download takes longer than that (nginx's ``send_timeout``): the
    reader is served on, for ``pace.seconds`` or until it has read enough.

    2 s, not 1, for the slower one: on loopback a segment is 64 kB, so a
    reader that slow acknowledges in steps up to 1.2 s apart (on a real link,
    every few ms).
    """
    server = server_factory(edition, "--write-timeout", pace.write_timeout)
    requests = GET * 20_000  # about 6 MB of answers: more than the kernel holds
    received = bytearray()
    with socket.socket() as sock:
        sock.settimeout(10.0)
        sock.connect(("127.0.0.1", server.port))
        # Sent from a thread: the server stops reading until we have read.
        sender = threading.Thread(target=sock.sendall, args=(requests,), daemon=True)
        sender.start()
        started = time.monotonic()
        while time.monotonic() - started < pace.seconds and len(received) < pace.enough:
            chunk = sock.recv(pace.read_size)  # a reset raises here
            assert chunk, f"closed after {time.monotonic() - started:.1f} s"
            received += chunk
            time.sleep(pace.pause)
    whole = bytes(received[: received.rfind(b"HTTP/1.1 ")])
    assert len(received) >= pace.enough
    assert set(iter_statuses(whole)) == {200}
    assert "Dropped" not in server.log()


def test_clients_that_leave_during_sleep_free_its_worker_and_are_logged_499(
    edition: str, server_factory: ServerFactory
) -> None:
    """A ``/sleep`` whose client has closed (or reset) ends at once: nobody
    waits behind it, and the access log says 499, not a 200 nobody got."""
    server = server_factory(edition, "--sleep-seconds", "3", "--log-level", "debug")
    leavers = [connect(server.port) for _ in range(20)]
    for sock in leavers:
        sock.sendall(b"GET /sleep HTTP/1.1\r\nHost: localhost\r\n\r\n")
    wait_for_count(server, SLEEP_LOGGED, 4)  # the threaded edition's four workers
    for index, sock in enumerate(leavers):
        if index % 2:  # half of them reset rather than close
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        sock.close()
    # Before a single 3 s delay is over, let alone five waves of them.
    started = time.monotonic()
    assert request(server.port, "/", timeout=2.5).status == 200
    assert time.monotonic() - started < 2.5
    wait_for_count(server, r'"GET /sleep HTTP/1\.1" 499 0 ', 20)
    assert count_lines(server, r'"GET /sleep HTTP/1\.1" 200 ') == 0


# -- graceful shutdown -------------------------------------------------------------


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_a_stop_signal_answers_the_sleeps_in_flight_then_exits_0(
    edition: str, signum: signal.Signals, server_factory: ServerFactory
) -> None:
    """Book E6/E12: a signal with four /sleep in flight: the idle connection
    closes at once, new ones are refused, the four get their whole page with
    ``Connection: close``, and the server exits 0."""
    server = server_factory(edition, "--sleep-seconds", "0.5", "--log-level", "debug")
    idle = connect(server.port)
    idle_reader = ResponseReader(idle)
    idle.sendall(GET)
    assert idle_reader.read().status == 200
    sleepers = [connect(server.port) for _ in range(4)]
    try:
        for sock in sleepers:
            sock.sendall(SLEEP)
        wait_for_count(server, SLEEP_LOGGED, 4)
        server.signal(signum)
        server.wait_for_log(r"INFO Shutting down\.$")
        assert idle_reader.at_eof(timeout=0.4)  # long before the sleeps end
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            connect(server.port, timeout=2.0).close()
        readers = [ResponseReader(sock) for sock in sleepers]
        responses = [reader.read() for reader in readers]
        assert [response.status for response in responses] == [200] * 4
        assert all(b"<h1>Hello!</h1>" in response.body for response in responses)
        assert all(r.header("connection") == "close" for r in responses)
        assert all(reader.at_eof() for reader in readers)
    finally:
        for sock in [idle, *sleepers]:
            sock.close()
    assert server.wait() == 0
    assert "Traceback" not in server.log()
    assert "KeyboardInterrupt" not in server.log()


@pytest.mark.parametrize("late", [False, True], ids=["together", "during-the-sleep"])
def test_a_stop_signal_answers_requests_pipelined_behind_a_sleep(
    edition: str, late: bool, server_factory: ServerFactory
) -> None:
    """Requests that arrived before the stop are answered, in order, the
    last with ``Connection: close``: sent with the ``/sleep`` in one write,
    or on the same connection while it sleeps."""
    server = server_factory(edition, "--sleep-seconds", "0.5", "--log-level", "debug")
    rest = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(server.port) as sock:
        sock.sendall(SLEEP if late else SLEEP + rest)
        server.wait_for_log(SLEEP_LOGGED)
        if late:
            sock.sendall(rest)  # loopback: in the server's socket once sent
        server.signal(signal.SIGTERM)
        server.wait_for_log(r"INFO Shutting down\.$")
        raw = read_until_close(sock)
    assert list(iter_statuses(raw)) == [200, 200, 404]
    heads = raw.split(b"HTTP/1.1 ")[1:]
    assert [b"Connection: close" in head for head in heads] == [False, False, True]
    assert server.wait() == 0
    assert "Traceback" not in server.log()


def test_max_requests_pipelined_past_the_budget_get_exactly_n_answers(
    edition: str, server_factory: ServerFactory
) -> None:
    """--max-requests 2, three requests in one write: two answers, the second
    with ``Connection: close``; the third is left for the client to retry."""
    server = server_factory(edition, "--max-requests", "2")
    with connect(server.port) as sock:
        sock.sendall(GET * 3)
        raw = read_until_close(sock)
    assert list(iter_statuses(raw)) == [200, 200]
    assert raw.count(b"Connection: close") == 1
    assert server.wait(10) == 0


def test_the_shutdown_grace_period_is_bounded(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(
        edition,
        "--sleep-seconds", "30",
        "--shutdown-timeout", "0.3",
        "--log-level", "debug",
    )  # fmt: skip
    with connect(server.port) as sock:
        sock.sendall(SLEEP)
        wait_for_count(server, SLEEP_LOGGED, 1)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert ResponseReader(sock).at_eof(timeout=2.0)
    assert time.monotonic() - started < 3.0
    server.wait_for_log(r"WARNING Requests still running after 0\.3 s")


def test_no_access_log_means_no_request_lines(
    edition: str, server_factory: ServerFactory
) -> None:
    server = server_factory(edition, "--no-access-log", "--max-requests", "1")
    assert request(server.port).status == 200
    assert server.wait() == 0
    assert '"GET / HTTP/1.1"' not in server.log()
