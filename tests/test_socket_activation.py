"""Serving on a socket handed over: ``--fd N`` and systemd's socket activation.

A service manager (systemd's ``.socket`` units, ``systemd-socket-activate``)
binds the port itself and starts the server on the first connection, handing
the listening socket over as descriptor 3 with ``LISTEN_FDS`` /
``LISTEN_PID``; ``--fd N`` does the same for a descriptor passed by hand.
Either way the connections the manager accepted before the server ran are in
the socket's queue, and are answered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from support import (
    MODULES,
    ResponseReader,
    connect,
    free_port,
    launch,
    only_line,
    request,
)

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


@contextlib.contextmanager
def listening_socket() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()


def server_command(edition: str, *args: str) -> list[str]:
    return [sys.executable, "-m", MODULES[edition], *args]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_fd_serves_the_socket_handed_over_and_its_waiting_connections(
    edition: str, processes: str
) -> None:
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        early = connect(port)  # queued before the server even started
        early.sendall(GET)
        fd = sock.fileno()
        server = launch(
            edition,
            server_command(edition, "--fd", str(fd), "--processes", processes),
            pass_fds=(fd,),
        )
        try:
            assert server.port == port  # the start-up line names the real port
            assert ResponseReader(early).read().status == 200
            assert request(port, "/").status == 200
            server.signal(signal.SIGTERM)
            assert server.wait(15) == 0
        finally:
            early.close()
            server.kill()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        ("file", "is not a socket"),
        ("unbound", "is not a listening TCP socket"),
    ],
)
def test_fd_that_is_no_listening_socket_is_a_one_line_error(
    edition: str, make: str, says: str
) -> None:
    with contextlib.ExitStack() as stack:
        if make == "file":
            fd = os.open(os.devnull, os.O_RDONLY)
            stack.callback(os.close, fd)
        else:
            fd = stack.enter_context(socket.socket()).fileno()
        done = subprocess.run(
            server_command(edition, "--fd", str(fd)),
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    assert done.returncode == 1
    line = only_line(done.stderr)
    assert line.startswith(f"error: --fd {fd} {says}"), line


def test_a_negative_fd_is_a_usage_error(edition: str) -> None:
    done = subprocess.run(
        server_command(edition, "--fd", "-1"),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 2
    assert "is not a file descriptor" in done.stderr


ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate not on PATH")
def test_systemd_socket_activation_starts_the_server_on_the_first_connection(
    edition: str,
) -> None:
    """``systemd-socket-activate -l`` listens, and on the first connection
    execs the server with the socket as descriptor 3 (LISTEN_FDS=1): that
    connection, accepted before the server existed, gets the hello page."""
    assert ACTIVATE is not None
    port = free_port()
    command = [ACTIVATE, "-l", f"127.0.0.1:{port}", *server_command(edition)]
    activator = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert activator.stderr is not None
        first = activator.stderr.readline()  # "Listening on 127.0.0.1:PORT as 3."
        assert f"127.0.0.1:{port}" in first, first
        deadline = time.monotonic() + 15
        with connect(port) as sock:
            sock.sendall(GET)
            sock.settimeout(max(1.0, deadline - time.monotonic()))
            response = ResponseReader(sock).read()
        assert response.status == 200
        assert request(port, "/").status == 200
        activator.send_signal(signal.SIGTERM)  # the server: same PID, exec'd
        _, log = activator.communicate(timeout=15)
        assert activator.returncode == 0, log
        assert f"Listening on http://127.0.0.1:{port} (" in log
        assert "Traceback" not in log
    finally:
        if activator.poll() is None:
            activator.kill()
            activator.wait(5)


DEPLOY = os.path.join(os.path.dirname(__file__), "..", "deploy")


def unit_settings(name: str) -> dict[str, str]:
    """``Key=value`` lines of a unit file in deploy/ (comments skipped)."""
    settings = {}
    with open(os.path.join(DEPLOY, name), encoding="utf-8") as unit:
        for line in unit:
            key, equals, value = line.strip().partition("=")
            if equals and not line.startswith(("#", ";")):
                settings[key] = value
    return settings


def test_the_unit_pair_listens_where_the_threaded_edition_would() -> None:
    socket_unit = unit_settings("hello-threaded.socket")
    service = unit_settings("hello-threaded.service")
    assert socket_unit["ListenStream"] == "127.0.0.1:7878"  # the book's address
    assert service["Requires"] == "hello-threaded.socket"
    program, *args = service["ExecStart"].split()
    assert program.endswith("/python")
    assert args[:2] == ["-m", "threaded"]
    assert "--port" not in args  # the socket is systemd's
