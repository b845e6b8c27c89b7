"""nginx in front of two hosts, one of whose links is cut: deploy/nginx.conf, for real.

Three hosts on this one machine, made of network namespaces: ``lb`` runs
nginx (deploy/nginx.conf, its addresses swapped for the test's), ``b1`` and
``b2`` one server each. veth pairs join the root namespace to ``lb`` and
``lb`` to each backend, in a private subnet (10.231.0.0/28) that exists only
on those links. Load comes from the root namespace. Then ``b1``'s link goes
down (``ip link set ... down`` inside ``b1``: not a graceful stop — its
packets simply vanish), and later comes back. What a client sees:

* both backends answer while both are up;
* with ``b1`` cut, no client error: what nginx had sent to ``b1`` times out
  (``proxy_read_timeout``, ``proxy_connect_timeout``) and is retried on
  ``b2`` (``proxy_next_upstream error timeout``), so the cost is latency,
  bounded by those timeouts;
* with the link back, ``b1`` has traffic again within ``fail_timeout``.

Needs root (namespaces), ``ip`` and nginx; skipped with the reason otherwise.
Everything is removed afterwards, pass or fail: the namespaces (and with
them their veth ends) and every process, by PID.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import (
    MODULES,
    ResponseReader,
    RunningServer,
    connect,
    count_lines,
    launch,
    request,
    wait_until,
)
from test_nginx import NGINX, TEMPLATE, Nginx, swapped

IP = shutil.which("ip")
PREFIX = f"hello{os.getpid() % 100000}"
"""Namespace and link names of this run (unique per test process)."""
CLIENT, LB_FRONT = "10.231.0.1", "10.231.0.2"  # root <-> lb
LB_TO_B1, B1 = "10.231.0.5", "10.231.0.6"  # lb <-> b1
LB_TO_B2, B2 = "10.231.0.9", "10.231.0.10"  # lb <-> b2
BACKEND_PORT, FRONT_PORT = 7878, 8080
PACE, PACED_REQUESTS = 0.001, 100_000  # per client: at most ~1,000 a second
HELLO = r'"GET / HTTP/1\.1" 200 '
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _can_make_namespaces() -> str | None:
    """Why the hosts cannot be made here, or None."""
    if IP is None:
        return "no ip command (Debian package iproute2)"
    if NGINX is None:
        return "nginx is not installed (Debian package nginx)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}probe"
    made = subprocess.run([IP, "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.decode().strip()}"
    subprocess.run([IP, "netns", "del", probe], capture_output=True, check=False)
    return None


WHY_NOT = _can_make_namespaces()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


def ip(*args: str) -> None:
    assert IP is not None
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def three_hosts() -> Iterator[dict[str, str]]:
    """The namespaces lb, b1, b2 and their links; removed on the way out."""
    names = {host: f"{PREFIX}{host}" for host in ("lb", "b1", "b2")}
    try:
        for name in names.values():
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        lb = names["lb"]
        # root <-> lb: the root end is the client's, and goes with lb.
        front = ["peer", "name", "front", "netns", lb]
        ip("link", "add", f"{PREFIX}c", "type", "veth", *front)
        ip("addr", "add", f"{CLIENT}/30", "dev", f"{PREFIX}c")
        ip("link", "set", f"{PREFIX}c", "up")
        ip("-n", lb, "addr", "add", f"{LB_FRONT}/30", "dev", "front")
        ip("-n", lb, "link", "set", "front", "up")
        for host, near, far in (("b1", LB_TO_B1, B1), ("b2", LB_TO_B2, B2)):
            peer = ["peer", "name", "uplink", "netns", names[host]]
            ip("-n", lb, "link", "add", f"to-{host}", "type", "veth", *peer)
            ip("-n", lb, "addr", "add", f"{near}/30", "dev", f"to-{host}")
            ip("-n", lb, "link", "set", f"to-{host}", "up")
            ip("-n", names[host], "addr", "add", f"{far}/30", "dev", "uplink")
            ip("-n", names[host], "link", "set", "uplink", "up")
        yield names
    finally:
        for name in names.values():
            subprocess.run(
                [IP or "ip", "netns", "del", name], capture_output=True, check=False
            )
        subprocess.run(
            [IP or "ip", "link", "del", f"{PREFIX}c"], capture_output=True, check=False
        )


def render(template: str) -> str:
    """deploy/nginx.conf with the hosts' addresses."""
    backends = (f"{B1}:{BACKEND_PORT}", f"{B2}:{BACKEND_PORT}")
    return "user root;\n" + swapped(template, *backends, f"{LB_FRONT}:{FRONT_PORT}")


@dataclass
class Load:
    """Clients on fresh connections from the root namespace, until stopped."""

    statuses: list[tuple[float, float, int]] = field(default_factory=list)
    """(sent, seconds taken, status), in ``time.monotonic()``."""
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        """GET / on a keep-alive connection to nginx, as browsers do (a fresh
        one per request would soon run out of ports: 10.231.0.1 is one
        address), a new connection whenever nginx closes one."""
        sock: socket.socket | None = None
        try:
            # Bounded in count as well as in time, and paced: flat out, four
            # clients once used up 20,000 requests each before the link came back.
            for _ in range(PACED_REQUESTS):
                if self.stop.wait(PACE):
                    return
                sent = time.monotonic()
                try:
                    if sock is None:
                        sock = connect(FRONT_PORT, LB_FRONT, timeout=20)
                        reader = ResponseReader(sock)
                    sock.sendall(GET)
                    response = reader.read()
                except OSError as error:
                    with self.lock:
                        self.errors.append(repr(error))
                    if sock is not None:
                        sock.close()
                        sock = None
                    continue
                with self.lock:
                    self.statuses.append(
                        (sent, time.monotonic() - sent, response.status)
                    )
                if response.header("connection") == "close":
                    sock.close()
                    sock = None
        finally:
            if sock is not None:
                sock.close()

    def answered(self) -> int:
        with self.lock:
            return len(self.statuses)

    def slowest_since(self, moment: float) -> float:
        """The longest wait of a request sent at ``moment`` or later (s)."""
        with self.lock:
            return max((t for sent, t, _ in self.statuses if sent >= moment), default=0)


def backend(edition: str, namespace: str, address: str) -> RunningServer:
    command = [IP or "ip", "netns", "exec", namespace, sys.executable, "-m"]
    command += [MODULES[edition], "--host", address, "--port", str(BACKEND_PORT)]
    return launch(edition, command)


def nginx_answers() -> bool:
    with contextlib.suppress(OSError, ValueError):
        return request(FRONT_PORT, "/", host=LB_FRONT, timeout=2).status == 200
    return False


@contextlib.contextmanager
def failover_rig(
    edition: str, prefix: Path
) -> Iterator[tuple[dict[str, str], RunningServer, RunningServer]]:
    """The three hosts, a server in b1 and b2, nginx in lb; all gone after."""
    started: list[RunningServer] = []
    nginx: Nginx | None = None
    with three_hosts() as hosts:
        try:
            started.append(backend(edition, hosts["b1"], B1))
            started.append(backend(edition, hosts["b2"], B2))
            config = prefix / "nginx.conf"
            config.write_text(render(TEMPLATE.read_text()))
            command = [IP or "ip", "netns", "exec", hosts["lb"], NGINX or "nginx"]
            command += ["-p", f"{prefix}/", "-c", str(config), "-e", "stderr"]
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            nginx = Nginx(process, prefix, FRONT_PORT)
            wait_until(nginx_answers, lambda: f"no nginx in lb: {nginx.error_log()}")
            yield hosts, started[0], started[1]
        finally:
            if nginx is not None:
                nginx.stop()
            for server in started:
                server.kill()


# What is tested is nginx's handling of a host that vanishes, the same
# whatever answers behind it; the proxy tests over both editions are in
# test_nginx.py. So one edition, the primary one (and CI's time).
def test_a_backend_host_cut_off_costs_clients_no_error(tmp_path: Path) -> None:
    edition = "threaded"
    load = Load()
    clients = [threading.Thread(target=load.client) for _ in range(4)]
    with failover_rig(edition, tmp_path) as (hosts, first, second):
        try:
            for client in clients:
                client.start()
            # Both up: both answer.
            wait_until(
                lambda: min(count_lines(first, HELLO), count_lines(second, HELLO)) > 50,
                lambda: f"not spread: {first.log()[-300:]}",
            )
            # b1's link goes down: no goodbye, its packets just vanish.
            cut = time.monotonic()
            ip("-n", hosts["b1"], "link", "set", "uplink", "down")
            at_cut = load.answered()

            def failed_over() -> bool:
                # Some request met the dead host, timed out and was answered
                # by the other; and traffic flows again after it.
                return (
                    load.answered() >= at_cut + 300 and load.slowest_since(cut) >= 2.5
                )

            wait_until(
                failed_over,
                lambda: f"no fail-over after the cut: {load.errors[-3:]}",
                timeout=20,
            )
            # The link comes back: b1 has traffic again within fail_timeout.
            served_by_b1 = count_lines(first, HELLO)
            restored = time.monotonic()
            ip("-n", hosts["b1"], "link", "set", "uplink", "up")
            wait_until(
                lambda: count_lines(first, HELLO) > served_by_b1 + 20,
                lambda: "b1 got no traffic back after its link returned",
                timeout=15,
            )
            back_after = time.monotonic() - restored
        finally:
            load.stop.set()
            for client in clients:
                client.join(30)

    assert load.errors == []
    assert {status for _, _, status in load.statuses} == {200}
    during = [taken for sent, taken, _ in load.statuses if cut <= sent < restored]
    # What nginx had sent to b1 waited for its timeout, then went to b2: the
    # cost of the cut is latency, bounded by proxy_read_timeout (3 s) and
    # proxy_connect_timeout (2 s) plus the retry.
    assert max(during) < 3 + 2 + 1, sorted(during)[-5:]
    # Back within fail_timeout after the last failed try, which may itself
    # have begun just before the link came back (and waits its read timeout).
    config = TEMPLATE.read_text()
    fail_timeout = int(re.findall(r"fail_timeout=(\d+)s", config)[0])
    read_timeout = int(re.findall(r"proxy_read_timeout (\d+)s;", config)[0])
    assert back_after < fail_timeout + read_timeout + 2
