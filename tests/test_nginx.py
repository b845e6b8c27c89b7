"""nginx in front of two instances: deploy/nginx.conf, run for real.

Each test starts two servers of one edition on free loopback ports and an
nginx whose configuration is deploy/nginx.conf itself, with the test's ports
in place of 7878, 7879 and 8080, one worker process (so that round-robin is
one sequence, not one per worker) and, when the tests run as root, ``user
root`` (the temporary directory is not open to nginx's default user). Then:

* requests are spread over both backends;
* ``/sleep`` through the proxy keeps the book's contrast: behind two threaded
  backends of one worker each, four at once finish in two waves; behind two
  asyncio backends, together;
* stopping one backend gracefully (SIGTERM) while requests flow loses none:
  what nginx had sent it is answered by it, and nginx sends the rest to the
  other (``proxy_next_upstream error timeout``).

nginx runs in the foreground (``daemon off``) under this test's control and is
stopped by its PID (SIGQUIT, its graceful stop; SIGKILL by PID as a last
resort, its workers too). It only ever listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ServerFactory
from support import (
    Response,
    RunningServer,
    count_lines,
    free_port,
    request,
    sleep_started,
    wait_for_count,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "nginx.conf"


def _find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


NGINX = _find_nginx()
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian package nginx)"
)


def swapped(template: str, first: str, second: str, listen: str) -> str:
    """deploy/nginx.conf with other backend and listen addresses (HOST:PORT)
    and one worker; each replacement must hit once."""
    replacements = [
        ("server 127.0.0.1:7878 ", f"server {first} "),
        ("server 127.0.0.1:7879 ", f"server {second} "),
        ("listen 127.0.0.1:8080;", f"listen {listen};"),
        ("worker_processes auto;", "worker_processes 1;"),
    ]
    text = template
    for old, new in replacements:
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


def render(template: str, backends: tuple[int, int], port: int) -> str:
    """deploy/nginx.conf with the test's loopback ports."""
    first, second = (f"127.0.0.1:{backend}" for backend in backends)
    text = swapped(template, first, second, f"127.0.0.1:{port}")
    # Only ever loopback.
    assert re.findall(r"^\s*listen\s+(\S+);", text, re.MULTILINE) == [
        f"127.0.0.1:{port}"
    ]
    if os.geteuid() == 0:
        text = "user root;\n" + text
    return text


@dataclass
class Nginx:
    """A foreground nginx master and the directory it works in."""

    process: subprocess.Popen[bytes]
    prefix: Path
    port: int

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self) -> str:
        path = self.prefix / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def get(self, path: str = "/") -> Response:
        return request(self.port, path, timeout=20)

    def stop(self) -> None:
        """SIGQUIT (graceful) by PID; SIGKILL for it and its workers if need be."""
        if self.process.poll() is not None:
            return
        workers = _children(self.process.pid)
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    return []


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError, ConnectionError, ValueError):
        return request(port, "/", timeout=2).status == 200
    return False


def start_nginx(prefix: Path, backends: tuple[int, int]) -> Nginx:
    """nginx on a free port in front of ``backends``; retried if the port was taken."""
    assert NGINX is not None
    template = TEMPLATE.read_text()
    failures = []
    for _ in range(3):
        port = free_port()
        config = prefix / "nginx.conf"
        config.write_text(render(template, backends, port))
        process = subprocess.Popen(
            [NGINX, "-p", f"{prefix}/", "-c", str(config), "-e", "stderr"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        nginx = Nginx(process, prefix, port)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return nginx
            time.sleep(0.05)
        nginx.stop()
        assert process.stderr is not None
        why = process.stderr.read().decode(errors="replace") + nginx.error_log()
        failures.append(why)
        if "Address already in use" not in why:  # only a lost race is retried
            break
    raise AssertionError("nginx did not start:\n" + "\n".join(failures))


NginxFactory = Callable[[tuple[int, int]], Nginx]


@pytest.fixture
def nginx_factory(tmp_path: Path) -> Iterator[NginxFactory]:
    started: list[Nginx] = []

    def factory(backends: tuple[int, int]) -> Nginx:
        nginx = start_nginx(tmp_path, backends)
        started.append(nginx)
        return nginx

    yield factory
    for nginx in started:
        nginx.stop()


def backends(
    server_factory: ServerFactory, edition: str, *args: str
) -> tuple[RunningServer, RunningServer]:
    return (server_factory(edition, *args), server_factory(edition, *args))


HELLO = r'"GET / HTTP/1\.1" 200 '
SLEPT = r'"GET /sleep HTTP/1\.1" 200 '


def test_requests_are_spread_over_both_backends(
    edition: str, server_factory: ServerFactory, nginx_factory: NginxFactory
) -> None:
    first, second = backends(server_factory, edition)
    nginx = nginx_factory((first.port, second.port))
    replies = [nginx.get("/") for _ in range(20)]
    assert {reply.status for reply in replies} == {200}
    assert b"Hello!" in replies[0].body
    assert nginx.get("/nope").status == 404
    # Round-robin: about half each (the probe that found nginx up counts too).
    wait_for_count(first, HELLO, 5)
    wait_for_count(second, HELLO, 5)
    log = nginx.access_log()
    for backend in (first, second):
        assert f"upstream=127.0.0.1:{backend.port} " in log


def test_sleep_through_the_proxy_keeps_its_contrast(
    edition: str, server_factory: ServerFactory, nginx_factory: NginxFactory
) -> None:
    delay = 0.6
    args = ["--sleep-seconds", str(delay)]
    if edition == "threaded":
        args += ["--workers", "1"]
    first, second = backends(server_factory, edition, *args)
    nginx = nginx_factory((first.port, second.port))

    def timed_sleep() -> tuple[int, float]:
        started = time.monotonic()
        reply = nginx.get("/sleep")
        return reply.status, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: timed_sleep(), range(4)))
    assert [status for status, _ in results] == [200] * 4
    took = sorted(seconds for _, seconds in results)
    assert took[0] >= delay * 0.9
    if edition == "threaded":
        # Two per backend, one worker each: the second waits for the first.
        assert took[0] < delay * 1.6
        assert took[-1] >= 2 * delay * 0.9
    else:
        assert took[-1] < delay * 1.6  # all four at once
    # Round-robin: two each (their access lines may trail the replies a bit).
    wait_for_count(first, SLEPT, 2)
    wait_for_count(second, SLEPT, 2)
    assert count_lines(first, SLEPT) == count_lines(second, SLEPT) == 2


def test_stopping_one_backend_loses_no_request(
    edition: str, server_factory: ServerFactory, nginx_factory: NginxFactory
) -> None:
    args = ("--sleep-seconds", "1", "--log-level", "debug")
    stopped, survivor = backends(server_factory, edition, *args)
    nginx = nginx_factory((stopped.port, survivor.port))
    for _ in range(4):  # nginx now holds idle keep-alive connections to both
        assert nginx.get("/").status == 200

    failures: list[BaseException] = []
    statuses: list[int] = []
    flowing = threading.Event()
    flowing.set()

    def flow() -> None:
        while flowing.is_set():
            try:
                statuses.append(nginx.get("/").status)
            except Exception as error:  # collected, asserted below
                failures.append(error)

    baseline = count_lines(stopped, sleep_started(edition))
    with ThreadPoolExecutor(6) as pool:
        sleepers = [pool.submit(nginx.get, "/sleep") for _ in range(4)]
        # At least one /sleep is under way at the backend about to stop.
        wait_for_count(stopped, sleep_started(edition), baseline + 1)
        flows = [pool.submit(flow) for _ in range(2)]
        time.sleep(0.2)
        stopped.signal(signal.SIGTERM)
        assert stopped.wait(10) == 0
        during = len(statuses)
        time.sleep(0.5)  # requests go on, to the survivor only
        flowing.clear()
        for future in flows:
            future.result(timeout=20)
        slept = [sleeper.result(timeout=20) for sleeper in sleepers]

    assert failures == []
    assert len(statuses) > during > 0
    assert set(statuses) == {200}
    assert [reply.status for reply in slept] == [200] * 4
    # What nginx had sent the stopping backend, it answered itself (with
    # Connection: close, after "Shutting down."), rather than nginx retrying.
    log = stopped.log()
    after = log[log.index("Shutting down.") :]
    assert re.search(SLEPT, after), log
    assert "Traceback" not in log
    assert nginx.get("/").status == 200
