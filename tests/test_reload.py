"""SIGHUP to the parent of ``--processes N``: fresh children, the old ones drained.

Under a steady load — fresh connections and keep-alive, ``/`` and ``/sleep``
— a reload loses no request and refuses none. A keep-alive client whose idle
connection the draining child closes retries its request on a new one, as
HTTP clients do for an idempotent request on a reused connection that closed
before any byte of its answer (RFC 9112 §9.3.1); those retries are counted.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from conftest import ServerFactory
from support import (
    ResponseReader,
    RunningServer,
    connect,
    request,
    wait_for_count,
    wait_until,
)

GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
MAX_REQUESTS = 5000
"""Per client: bounded in count as well as in time."""


@dataclass
class Tally:
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: list[float] = field(default_factory=list)
    """When (``time.monotonic()``) a keep-alive request was retried."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int) -> None:
        with self.lock:
            self.statuses.append(status)

    def answered(self) -> int:
        with self.lock:
            return len(self.statuses)

    def fail(self, why: str) -> None:
        with self.lock:
            self.errors.append(why)


def fresh_connections(
    port: int, path: str, tally: Tally, stop: threading.Event
) -> None:
    for _ in range(MAX_REQUESTS):
        if stop.is_set():
            return
        try:
            tally.add(request(port, path).status)
        except OSError as error:
            tally.fail(f"{path}: {error!r}")


def keep_alive(port: int, tally: Tally, stop: threading.Event) -> None:
    sock: socket.socket | None = None
    try:
        for _ in range(MAX_REQUESTS):
            if stop.is_set():
                return
            for attempt in range(2):
                if sock is None:
                    sock = connect(port)
                    reader = ResponseReader(sock)
                try:
                    sock.sendall(GET)
                    tally.add(reader.read().status)
                    break
                except (ConnectionError, OSError) as error:
                    sock.close()
                    sock = None
                    if attempt or reader.buffer:  # not a clean close: an error
                        tally.fail(f"keep-alive: {error!r}")
                        break
                    with tally.lock:
                        tally.retries.append(time.monotonic())
    finally:
        if sock is not None:
            sock.close()


def test_a_reload_under_load_loses_no_request_and_refuses_none(
    edition: str, server_factory: ServerFactory
) -> None:
    reload_under_load(
        server_factory(edition, "--processes", "2", "--sleep-seconds", "0.2")
    )


def test_a_reload_on_asyncios_own_loop_loses_no_request(
    server_factory: ServerFactory,
) -> None:
    """The stdlib loop (CI's newest Python may have no uvloop) makes a
    transport a step after its accept: until 4 Dec 2026 a draining child
    could close its server, or exit, in between (1 run in 3 lost one)."""
    options = ("--processes", "2", "--sleep-seconds", "0.2", "--loop", "asyncio")
    reload_under_load(server_factory("asyncio", *options))


def reload_under_load(server: RunningServer) -> None:
    port = server.port
    tally, stop = Tally(), threading.Event()
    clients = [
        threading.Thread(target=fresh_connections, args=(port, "/", tally, stop)),
        threading.Thread(target=fresh_connections, args=(port, "/", tally, stop)),
        threading.Thread(target=fresh_connections, args=(port, "/sleep", tally, stop)),
        threading.Thread(target=keep_alive, args=(port, tally, stop)),
        threading.Thread(target=keep_alive, args=(port, tally, stop)),
    ]
    for client in clients:
        client.start()
    try:
        answered = tally.answered
        wait_until(lambda: answered() >= 100, lambda: f"{tally}: the load is slow")
        reloaded = time.monotonic()
        server.signal(signal.SIGHUP)
        wait_for_count(server, r"Child process \d+ drained \(exit status 0\)", 2)
        drained = time.monotonic()
        before = answered()  # now on the fresh children only
        wait_until(lambda: answered() >= before + 100, lambda: f"{tally} after")
    finally:
        stop.set()
        for client in clients:
            client.join(15)
    assert tally.errors == []
    # A retry is a keep-alive connection a draining child closed: none before
    # the reload, none once both old children have gone. (How many: a client
    # may reconnect to an old child still taking in its backlog, and be
    # closed again, so there is no small fixed bound; 6 is the most seen.)
    assert all(reloaded <= when <= drained for when in tally.retries), tally
    assert set(tally.statuses) == {200}  # no 503: none refused
    server.wait_for_log(r"SIGHUP: starting 2 fresh child processes; 2 draining\.")

    # The fresh children run the program anew (exec'd, on the inherited
    # socket), not a fork's copy of the parent's code.
    log = server.log()
    after = log[log.index("SIGHUP: starting") :]
    fresh = [int(pid) for pid in re.findall(r"Child process (\d+) started\.", after)]
    assert len(fresh) == 2
    for pid in fresh:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            arguments = cmdline.read().split(b"\0")
        assert b"--fd" in arguments
    assert request(port, "/").status == 200
    server.signal(signal.SIGTERM)
    assert server.wait(15) == 0
    assert "Traceback" not in server.log()
