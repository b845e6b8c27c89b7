"""Real clients against both editions: curl, http.client, urllib.request, wrk.

Our own raw-socket client (``support.request``) proves the bytes; these prove
that the clients people really use agree with them: that curl and
``http.client`` keep one connection across requests, that HTTP/1.0 and HEAD
work as curl sends them, that ``urllib.request`` (which always asks to close)
is answered and closed, and that wrk's load gets nothing but 2xx. Each client
that is a separate program is skipped, with the reason, where it is missing.

Where a client reuses a connection, the test checks it three ways: what the
client says (curl's verbose lines, ``num_connects``), the local port it used,
and the server's access log, whose lines name the client's ``HOST:PORT``.
Every request carries a query string unique to the test (``/?t=...`` routes
to ``/``), so its access-log lines are found even on a shared server.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from conftest import ServerFactory
from support import RunningServer, request

HELLO = b"<h1>Hello!</h1>"
HI = b"<p>Hi from Python</p>"
OOPS = b"<h1>Oops!</h1>"
CLIENT_TIMEOUT = 10.0
"""Seconds any one client may take; the servers answer in milliseconds."""


def _tool(name: str, package: str) -> str:
    """The path of a command-line client, or skip the test saying what is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package})")
    return path


def _token() -> str:
    return uuid.uuid4().hex[:12]


def _served_to(
    server: RunningServer, target: str, status: int, method: str = "GET"
) -> str:
    """The ``HOST:PORT`` of the client that the access log says ``target`` went to.

    Waits for the line: a server logs a request just after sending its answer,
    so the client may have it before the line is written.
    """
    pattern = rf'(\S+) "{method} {re.escape(target)} HTTP/1\.[01]" {status} '
    return server.wait_for_log(pattern, timeout=CLIENT_TIMEOUT).group(1)


# -- curl ------------------------------------------------------------------------

_WRITE_OUT = "\\n<<%{http_code} %{num_connects} %{local_port}>>\\n"
_TRANSFER = re.compile(r"<<(\d{3}) (\d+) (\d+)>>")


@dataclass(frozen=True)
class CurlRun:
    """What curl wrote: ``stdout`` keeps its CRLFs, ``stderr`` is the verbose log."""

    stdout: str
    stderr: str


def _curl(*args: str) -> CurlRun:
    """Run curl (no proxy, errors shown, bounded in time); it must succeed."""
    command = [
        _tool("curl", "curl"),
        "--noproxy",
        "*",
        "--silent",
        "--show-error",
        "--max-time",
        str(CLIENT_TIMEOUT),
        *args,
    ]
    done = subprocess.run(
        command, capture_output=True, timeout=CLIENT_TIMEOUT * 2, check=False
    )
    # Decoded by hand: text mode would turn the responses' CRLFs into LFs.
    run = CurlRun(done.stdout.decode("latin-1"), done.stderr.decode("latin-1"))
    assert done.returncode == 0, f"curl exited {done.returncode}: {run.stderr}"
    return run


def _transfers(stdout: str) -> list[tuple[int, int, int]]:
    """``(status, new connections, local port)`` of each URL, from ``_WRITE_OUT``."""
    return [
        (int(code), int(connects), int(port))
        for code, connects, port in _TRANSFER.findall(stdout)
    ]


def test_curl_reuses_one_connection_for_two_urls(
    edition: str, shared_servers: dict[str, RunningServer]
) -> None:
    server = shared_servers[edition]
    token = _token()
    first, second = f"/?t={token}", f"/nope?t={token}"
    base = f"http://127.0.0.1:{server.port}"
    done = _curl("--verbose", "--write-out", _WRITE_OUT, base + first, base + second)

    assert HELLO in done.stdout.encode()
    assert OOPS in done.stdout.encode()
    # curl 7: "Re-using existing connection"; curl 8: "Re-using existing
    # http: connection" (8.14), "Reusing existing http: connection" (8.23).
    reused = r"re-?using existing (http: )?connection"
    assert re.search(reused, done.stderr, re.IGNORECASE), done.stderr
    assert len(re.findall(r"left intact", done.stderr)) == 2, done.stderr
    (code1, connects1, port1), (code2, connects2, port2) = _transfers(done.stdout)
    assert (code1, code2) == (200, 404)
    assert (connects1, connects2) == (1, 0), "the second URL opened a new connection"
    assert port1 == port2
    client = f"127.0.0.1:{port1}"
    assert _served_to(server, first, 200) == client
    assert _served_to(server, second, 404) == client


def test_curl_http10_is_answered_and_closed(
    edition: str, shared_servers: dict[str, RunningServer]
) -> None:
    server = shared_servers[edition]
    target = f"/?t={_token()}"
    done = _curl(
        "--http1.0", "--include", "--verbose", f"http://127.0.0.1:{server.port}{target}"
    )

    head, _, body = done.stdout.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert re.search(r"^Connection: close$", head, re.MULTILINE | re.IGNORECASE), head
    assert HELLO in body.encode()
    assert HI in body.encode()
    assert "> GET " + target + " HTTP/1.0" in done.stderr
    # curl 7: "Closing connection 0"; curl 8: "shutting down connection #0".
    closed = r"closing connection|shutting down connection"
    assert re.search(closed, done.stderr, re.IGNORECASE), done.stderr
    _served_to(server, target, 200)


def test_curl_http10_keep_alive_on_request(
    edition: str, shared_servers: dict[str, RunningServer]
) -> None:
    """An HTTP/1.0 client that asks for keep-alive gets it, and curl reuses it."""
    server = shared_servers[edition]
    token = _token()
    base = f"http://127.0.0.1:{server.port}"
    done = _curl(
        "--http1.0",
        "--include",
        "--header",
        "Connection: keep-alive",
        "--write-out",
        _WRITE_OUT,
        f"{base}/?t={token}",
        f"{base}/nope?t={token}",
    )

    heads = re.findall(r"^HTTP/1\.1 .*?\r\n\r\n", done.stdout, re.MULTILINE | re.DOTALL)
    assert len(heads) == 2
    for head in heads:
        assert re.search(
            r"^Connection: keep-alive\r$", head, re.MULTILINE | re.IGNORECASE
        )
    (code1, connects1, port1), (code2, connects2, port2) = _transfers(done.stdout)
    assert (code1, code2) == (200, 404)
    assert (connects1, connects2) == (1, 0)
    assert port1 == port2


def test_curl_head(edition: str, shared_servers: dict[str, RunningServer]) -> None:
    server = shared_servers[edition]
    token = _token()
    base = f"http://127.0.0.1:{server.port}"
    full = request(server.port, f"/?t={token}")
    missing = request(server.port, f"/nope?t={token}")
    done = _curl("--head", f"{base}/?t={token}", f"{base}/nope?t={token}")

    heads = done.stdout.split("\r\n\r\n")
    assert heads[-1] == "", "curl -I printed something after the last head"
    hello, oops = heads[0], heads[1]
    assert hello.startswith("HTTP/1.1 200 OK\r\n")
    assert oops.startswith("HTTP/1.1 404 Not Found\r\n")
    # The same headers as GET, Content-Length included, and no body.
    assert f"Content-Length: {len(full.body)}" in hello.split("\r\n")
    assert f"Content-Length: {len(missing.body)}" in oops.split("\r\n")
    assert "Content-Type: text/html; charset=utf-8" in hello.split("\r\n")
    assert "<html" not in done.stdout
    _served_to(server, f"/?t={token}", 200, method="HEAD")
    _served_to(server, f"/nope?t={token}", 404, method="HEAD")


# -- the standard library's clients ----------------------------------------------


def test_http_client_keeps_one_connection(
    edition: str, shared_servers: dict[str, RunningServer]
) -> None:
    server = shared_servers[edition]
    token = _token()
    targets = [
        ("GET", f"/?t={token}"),
        ("GET", f"/nope?t={token}"),
        ("HEAD", f"/?t={token}"),
    ]
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=CLIENT_TIMEOUT
    )
    answers = []
    try:
        connection.connect()
        sock = connection.sock
        assert sock is not None
        local = sock.getsockname()
        for method, target in targets:
            connection.request(method, target)
            response = connection.getresponse()
            answers.append((response.status, response.read(), response.will_close))
            # http.client would silently reconnect if the server had closed.
            assert connection.sock is sock, f"{method} {target} needed a new connection"
    finally:
        connection.close()

    (get_status, get_body, _), (missing_status, missing_body, _), head = answers
    assert (get_status, missing_status, head[0]) == (200, 404, 200)
    assert HELLO in get_body
    assert HI in get_body
    assert OOPS in missing_body
    assert head[1] == b""
    assert not any(will_close for _, _, will_close in answers)
    client = f"{local[0]}:{local[1]}"
    statuses = (200, 404, 200)
    for (method, target), status in zip(targets, statuses, strict=True):
        assert _served_to(server, target, status, method) == client


def _urllib_opener() -> urllib.request.OpenerDirector:
    """urllib without any proxy the environment may name: only 127.0.0.1 here."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_urllib_request(edition: str, shared_servers: dict[str, RunningServer]) -> None:
    server = shared_servers[edition]
    token = _token()
    base = f"http://127.0.0.1:{server.port}"
    opener = _urllib_opener()

    with opener.open(f"{base}/?t={token}", timeout=CLIENT_TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        # urllib always sends "Connection: close"; the answer says it closes.
        assert response.headers["Connection"] == "close"
        body = response.read()
    assert HELLO in body
    assert HI in body

    with pytest.raises(urllib.error.HTTPError) as missing:
        opener.open(f"{base}/nope?t={token}", timeout=CLIENT_TIMEOUT)
    with missing.value as error:
        assert error.code == 404
        assert OOPS in error.read()

    head = urllib.request.Request(f"{base}/?t={token}", method="HEAD")
    with opener.open(head, timeout=CLIENT_TIMEOUT) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(body)
        assert response.read() == b""

    _served_to(server, f"/?t={token}", 200)
    _served_to(server, f"/nope?t={token}", 404)
    _served_to(server, f"/?t={token}", 200, method="HEAD")


# -- wrk -------------------------------------------------------------------------


def test_wrk_short_run_has_no_errors(
    edition: str, server_factory: ServerFactory
) -> None:
    """A one-second wrk run: every response 2xx, no socket errors."""
    wrk = _tool("wrk", "wrk")
    # A server of its own, without the access log: wrk sends thousands of
    # requests, and the shared servers keep every log line in memory.
    server = server_factory(edition, "--no-access-log")
    done = subprocess.run(
        [
            wrk,
            "--threads",
            "1",
            "--connections",
            "4",
            "--duration",
            "1s",
            "--timeout",
            "2s",
            f"http://127.0.0.1:{server.port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    total = re.search(r"(\d+) requests in ", done.stdout)
    assert total is not None, done.stdout
    assert int(total.group(1)) > 0
    assert "Socket errors" not in done.stdout, done.stdout
    assert "Non-2xx" not in done.stdout, done.stdout
    assert server.process.poll() is None
