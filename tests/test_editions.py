"""What both editions promise a user of the command line, tested once over both.

Each test starts a real server subprocess of ``edition`` on ``--port 0`` (the
``edition`` fixture runs it once per edition) and checks what a user sees:
the status codes, the headers, the log lines and the exit status.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import ServerFactory
from support import MODULES, ResponseReader, connect, request

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
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot listen on" in lines[0]
    assert str(first.port) in lines[0]
    assert "Traceback" not in done.stderr
    assert request(first.port).status == 200  # the first one is unharmed
