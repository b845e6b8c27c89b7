"""``python -m bench.instructions``: instructions per request, counted by callgrind,
and the bare servers it counts as each asyncio design's floor."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import only_line
from test_bench import bench

from bench.instructions import (
    INSTALL_VALGRIND,
    InstructionsError,
    per_request,
    read_reply,
    send_concurrently,
    send_requests,
    table,
    total_instructions,
)
from bench.peers import PAGES
from bench.workloads import Workload
from common.runtime.logs import LISTENING

ROOT = Path(__file__).resolve().parent.parent


def instructions(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bench.instructions ARGS``, as a user would run it."""
    return bench(*args, module="bench.instructions", env=env, timeout=180)


@pytest.fixture(params=["streams", "protocol"])
def bare_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A bare server of each design, started as the bench starts it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.peers.bare_asyncio", request.param, "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        match = LISTENING.search(process.stderr.readline())
        assert match is not None, "no start-up line"
        assert f"bare {request.param}" in match.group(3)
        yield int(match.group(2))
    finally:
        process.terminate()
        assert process.wait(10) == 0  # SIGTERM is its clean exit (callgrind's dump)


def test_the_totals_are_read_from_callgrinds_output() -> None:
    assert total_instructions(b"events: Ir\nsummary: 123456\n") == 123456
    assert total_instructions(b"fn=main\n0 5\ntotals: 789\n") == 789
    with pytest.raises(InstructionsError, match="no totals"):
        total_instructions(b"events: Ir\n")


def test_one_requests_cost_is_the_difference_over_the_extra_requests() -> None:
    # Start-up, warm-up and shutdown (here 1,000,000) cancel out.
    assert (
        per_request((100, 1_000_000 + 100 * 250), (600, 1_000_000 + 600 * 250)) == 250
    )
    with pytest.raises(ValueError, match="more requests"):
        per_request((100, 5), (100, 5))


def test_the_table_shows_thousands_per_load() -> None:
    costs = {"same close": 23_700.0, "varied keep-alive": 3_900.0}
    text = table({"bare-protocol": costs}, ["same close", "varied keep-alive"])
    heading, row = text.splitlines()
    assert heading.split() == ["server", "same", "close", "varied", "keep-alive"]
    assert row.split() == ["bare-protocol", "23.7k", "3.9k"]


def test_a_reply_split_anywhere_is_read_whole_and_only_it() -> None:
    body = b"x" * 300
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + body
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(5)

        def send() -> None:
            for start in range(0, len(reply), 7):  # small pieces
                theirs.sendall(reply[start : start + 7])
            theirs.sendall(b"HTTP/1.1 200 OK\r\n")  # the next reply's start

        sender = threading.Thread(target=send)
        sender.start()
        buffer = bytearray()
        read_reply(ours, buffer)
        sender.join(5)
        theirs.close()
        while chunk := ours.recv(65536):
            buffer += chunk
        assert buffer == b"HTTP/1.1 200 OK\r\n"  # the next reply's: kept, not lost


def test_a_reply_other_than_200_is_an_error() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        with pytest.raises(InstructionsError, match="404"):
            read_reply(ours, bytearray())


def test_concurrent_senders_share_the_requests_over_connections_open_at_once() -> None:
    """--concurrency 4: every request sent once, numbered apart, over four
    keep-alive connections that are all open before any is answered."""
    clients, count = 4, 10
    targets: list[tuple[int, bytes]] = []  # (connection, target), as received
    everyone_connected = threading.Barrier(clients, timeout=10)
    lock = threading.Lock()
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

    def serve(sock: socket.socket, index: int) -> None:
        with sock:
            sock.settimeout(10)
            everyone_connected.wait()  # no answer until all four are here
            buffer = b""
            while chunk := sock.recv(65536):
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    with lock:
                        targets.append((index, head.split()[1]))
                    sock.sendall(reply)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]
        sender = threading.Thread(
            target=send_concurrently,
            args=(port, count, "keep-alive", Workload.VARIED, clients),
        )
        sender.start()
        servers = []
        for index in range(clients):
            sock, _ = listener.accept()
            servers.append(threading.Thread(target=serve, args=(sock, index)))
            servers[-1].start()
        sender.join(20)
        for server in servers:
            server.join(20)
    assert not sender.is_alive()
    assert sorted(target for _, target in targets) == sorted(
        b"/?n=%d" % number for number in range(count)
    )  # each number once
    per_connection = Counter(index for index, _ in targets)
    assert sorted(per_connection.values()) == [2, 2, 3, 3]


@pytest.mark.parametrize("mode", ["close", "keep-alive"])
@pytest.mark.parametrize("workload", [Workload.SAME, Workload.VARIED])
def test_the_bare_servers_answer_every_request_the_counter_sends(
    bare_port: int, mode: str, workload: Workload
) -> None:
    # Raises unless 20 whole 200s came back.
    send_requests(bare_port, 20, mode, workload, first=7)
    with socket.create_connection(("127.0.0.1", bare_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # it closes after a close request
            received += chunk
    assert received.endswith(PAGES.hello)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--servers", "nginx"], "no server called 'nginx'"),
        (["--requests", "50"], "is not FEW,MANY"),
        (["--requests", "60,50"], "is not FEW,MANY"),
        (["--concurrency", "0"], "is not a whole number from 1 to 1000"),
        (["--concurrency", "many"], "is not a whole number from 1 to 1000"),
        (["--concurrency", "300"], "--concurrency 300 is more than FEW (200)"),
        (["--mode", "slow"], "choose from close,keep-alive"),
        (["--workload", "browser"], "choose from same,varied"),
        (["--checkout", "old=/nonexistent"], "no asyncio_server/ there"),
        (["--servers", "asyncio", "--checkout", f"asyncio={ROOT}"], "used twice"),
    ],
)
def test_bad_input_is_one_line_and_status_2(args: list[str], says: str) -> None:
    done = instructions(*args)
    assert done.returncode == 2
    assert says in only_line(done.stderr)
    assert not done.stdout


def test_without_valgrind_it_says_how_to_install_it(tmp_path: Path) -> None:
    # A PATH with this Python and nothing else: no valgrind on it.
    (tmp_path / "python").symlink_to(sys.executable)
    done = instructions(env=dict(os.environ, PATH=str(tmp_path)))
    assert done.returncode == 2
    assert INSTALL_VALGRIND in only_line(done.stderr)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.parametrize(
    "server",
    [
        "bare-protocol",  # ours: it says which port it got (--port 0)
        pytest.param(  # a peer: told which port to take, counted once it answers
            "uvicorn",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("uvicorn") is None,
                reason="pip install '.[peers]'",
            ),
        ),
    ],
)
def test_a_real_count(server: str) -> None:
    done = instructions(
        "--servers", server, "--workload", "same", "--mode", "keep-alive",
        "--requests", "5,30",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[-1].split()
    assert row[0] == server
    thousands = float(row[1].removesuffix("k"))
    # A read, a write and the loop's turn at the least; a Python HTTP
    # server's whole request at the most (this edition's is ~50k).
    assert 0.5 < thousands < 1000
