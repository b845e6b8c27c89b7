"""The asyncio edition: in-process on both event loops, and as a program.

In-process tests run an :class:`AsyncioServer` on its own event loop in a
thread — ``asyncio`` or ``uvloop``, each test once per loop — while the test
itself is a pytest-asyncio coroutine on the plugin's loop playing the clients.
Keeping the two loops apart means a client that blocks cannot stall the
server, and the server's loop is chosen without pytest-asyncio's deprecated
policy fixture. Subprocess tests (``server_factory``) cover the command line,
signals, ``--max-requests`` and bind failures.

Waiting is always for a condition (a log line, a server count, a response),
polled with a deadline; every traffic loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest
import uvloop
from conftest import ServerFactory
from support import (
    Response,
    connect,
    parse_head,
    request,
)

from asyncio_server.__main__ import serve
from asyncio_server.connections import FIRST_BYTES_GRACE
from asyncio_server.loops import LoopUnavailable, loop_factory
from asyncio_server.server import AsyncioServer
from common.runtime.cli import Edition, LoopChoice, Options

T = TypeVar("T")

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
BASE = Options(edition=Edition.ASYNCIO, port=0, sleep_seconds=0.2)
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


# -- an in-process server on a loop of its own --


class LiveServer:
    """An :class:`AsyncioServer` running on its own event loop in a thread."""

    def __init__(self, loop_kind: str, options: Options) -> None:
        self.loop_kind = loop_kind
        self.options = options
        self.server = AsyncioServer(options)
        self.status: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, name=f"server-{loop_kind}", daemon=True
        )

    def _main(self) -> None:
        with asyncio.Runner(loop_factory=LOOPS[self.loop_kind]) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.server.start()
            self.server.announce()  # as the program does, once it is stoppable
        except BaseException as error:
            self._error = error
            return
        finally:
            self._ready.set()
        # The loop runs until stop(), even after a test's own shutdown, so
        # that call_soon_threadsafe never meets a closed loop.
        await self._stop.wait()
        self.status = await self.server.shutdown()  # idempotent

    def start(self) -> LiveServer:
        self._thread.start()
        assert self._ready.wait(10), "the server did not start"
        if self._error is not None:
            raise self._error
        return self

    @property
    def port(self) -> int:
        return self.server.port

    def query(self, read: Callable[[AsyncioServer], T]) -> T:
        """``read(server)`` evaluated on the server's own loop."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(read(self.server))
            except BaseException as error:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(run)
        return future.result(5)

    async def wait_until(
        self, predicate: Callable[[AsyncioServer], bool], timeout: float = 5.0
    ) -> None:
        """Poll ``predicate(server)`` on the server's loop until it holds."""
        deadline = time.monotonic() + timeout
        while not self.query(predicate):
            assert time.monotonic() < deadline, "condition not reached in time"
            await asyncio.sleep(0.005)

    async def shutdown(self) -> int:
        """The graceful stop, awaited from the test's loop."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self.server.shutdown(), self._loop)
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "the server thread did not stop"


LiveFactory = Callable[..., LiveServer]


@pytest.fixture(params=sorted(LOOPS))
def live(request: pytest.FixtureRequest) -> Iterator[LiveFactory]:
    """``live(**options)`` starts a server on the parametrised loop."""
    started: list[LiveServer] = []

    def factory(**overrides: Any) -> LiveServer:
        server = LiveServer(str(request.param), replace(BASE, **overrides))
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        server.stop()


# -- an asyncio client --


async def read_response(
    reader: asyncio.StreamReader, *, head: bool = False
) -> Response:
    head_bytes = (await reader.readuntil(b"\r\n\r\n"))[:-4]
    status, reason, headers = parse_head(head_bytes)
    length = 0 if head else int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return Response(status, reason, headers, body, head_bytes + b"\r\n\r\n" + body)


@contextlib.asynccontextmanager
async def opened(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def fetch(port: int, path: str = "/", *, method: str = "GET") -> Response:
    """One request on a fresh connection, with a bounded wait."""
    async with opened(port) as (reader, writer):
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        return await asyncio.wait_for(read_response(reader, head=method == "HEAD"), 5)


async def timed(awaitable: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await awaitable
    return result, time.perf_counter() - started


async def at_eof(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True when the server closes without sending anything more."""
    try:
        return await asyncio.wait_for(reader.read(1), timeout) == b""
    except ConnectionResetError:
        return True


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), as a crashed client would."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# -- in-process: the protocol on both loops --


@pytest.mark.asyncio
async def test_serves_pages_and_keeps_pipelined_order(
    live: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = live()
    page = await fetch(server.port)
    assert page.status == 200
    assert b"<title>Hello!</title>" in page.body
    head = await fetch(server.port, method="HEAD")
    assert head.body == b""
    assert head.header("content-length") == str(len(page.body))
    assert (await fetch(server.port, "/nope")).status == 404
    # A delayed reply in the middle of a pipeline holds back the ones after it.
    async with opened(server.port) as (reader, writer):
        writer.write(
            GET
            + b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        statuses = [(await read_response(reader)).status for _ in range(3)]
        assert statuses == [200, 200, 404]
        assert await at_eof(reader)
    assert (
        f"Listening on http://127.0.0.1:{server.port} (asyncio, {server.loop_kind})"
        in caplog.text
    )
    assert re.search(r'127\.0\.0\.1:\d+ "GET /sleep HTTP/1\.1" 200 \d+ \d', caplog.text)


@pytest.mark.asyncio
async def test_a_half_closed_client_still_gets_every_answer(live: LiveFactory) -> None:
    server = live(sleep_seconds=0.05)
    async with opened(server.port) as (reader, writer):
        # More than one batch: answering resumes after each.
        writer.write(GET * 80)
        writer.write_eof()  # "that is all": the answers are still owed
        statuses = [(await read_response(reader)).status for _ in range(80)]
        assert statuses == [200] * 80
        assert await at_eof(reader)
    await server.wait_until(lambda s: s.open_connections == 0)


@pytest.mark.asyncio
async def test_sleeps_do_not_block_each_other_or_fast_requests(
    live: LiveFactory,
) -> None:
    """The contrast with the threaded edition: 50 sleeps overlap completely."""
    server = live(sleep_seconds=0.2, access_log=False)
    started = time.perf_counter()
    sleepers = [asyncio.create_task(fetch(server.port, "/sleep")) for _ in range(50)]
    await server.wait_until(lambda s: s.sleeping == 50, timeout=2)
    fast, took = await timed(fetch(server.port))
    assert fast.status == 200
    assert took < 0.1, f"GET / took {took * 1000:.0f} ms during 50 sleeps"
    replies = await asyncio.gather(*sleepers)
    elapsed = time.perf_counter() - started
    assert [reply.status for reply in replies] == [200] * 50
    assert elapsed < 0.5, f"50 concurrent 0.2 s sleeps took {elapsed:.2f} s"


@pytest.mark.asyncio
async def test_a_new_connection_may_still_send_its_request_once_stopping(
    live: LiveFactory,
) -> None:
    """The listener accepts at once, so a connection can be taken in before
    its request arrives; a shutdown that begins in between still answers
    it, and a new connection that stays silent is closed after its grace."""
    server = live()
    async with (
        opened(server.port) as (reader, writer),
        opened(server.port) as (silent_reader, _),
    ):
        await server.wait_until(lambda s: s.open_connections == 2)  # accepted
        stopping = asyncio.create_task(server.shutdown())
        await server.wait_until(lambda s: s.stopping)
        writer.write(GET)
        reply = await asyncio.wait_for(read_response(reader), 5)
        assert reply.status == 200
        assert reply.header("connection") == "close"
        closed, took = await timed(at_eof(silent_reader))
        assert closed
        assert took < FIRST_BYTES_GRACE + 1, f"the silent one held on {took:.1f} s"
        assert await asyncio.wait_for(stopping, 5) == 0


@pytest.mark.skipif(
    not hasattr(socket, "TCP_DEFER_ACCEPT"), reason="TCP_DEFER_ACCEPT is Linux's"
)
def test_the_listener_accepts_at_once(live: LiveFactory) -> None:
    """Deferred accept, the threaded edition's, would serialise the loop's
    accepting after the client's request (the README's tails)."""
    server = live()

    def deferred(s: AsyncioServer) -> list[int]:
        option = socket.TCP_DEFER_ACCEPT
        return [
            sock.getsockopt(socket.IPPROTO_TCP, option) for sock in s.listening_sockets
        ]

    seconds = server.query(deferred)
    assert seconds, "no listening socket"
    assert all(value == 0 for value in seconds), seconds


@pytest.mark.asyncio
async def test_the_loop_sets_nodelay_on_every_connection(live: LiveFactory) -> None:
    """We rely on both loops to disable Nagle's algorithm (no call of ours)."""
    server = live()

    def nodelay(s: AsyncioServer) -> list[int]:
        return [
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            for sock in s.connection_sockets()
        ]

    async with opened(server.port) as (reader, writer):
        writer.write(GET)
        assert (await read_response(reader)).status == 200
        flags = server.query(nodelay)
    assert flags
    assert all(flags), flags


@pytest.mark.asyncio
async def test_a_client_that_never_reads_is_bounded_and_dropped(
    live: LiveFactory,
) -> None:
    server = live(write_timeout=1.0, access_log=False)
    hog = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.connect(("127.0.0.1", server.port))
    hog.setblocking(False)
    batch = GET * 200
    sent, stalled = 0, False
    deadline = time.monotonic() + 5
    try:
        # Pipeline requests and never read a reply: the server must stop
        # reading (backpressure) rather than buffer replies without bound.
        while sent < 64 * 1024 * 1024 and time.monotonic() < deadline:
            _, writable, _ = select.select([], [hog], [], 0.3)
            if not writable:
                stalled = True
                break
            try:
                sent += hog.send(batch)
            except BlockingIOError:
                continue
            except ConnectionError:
                stalled = True  # already dropped by the write deadline
                break
        assert stalled, f"the server read {sent} bytes without pushing back"
        reply, took = await timed(fetch(server.port))
        assert reply.status == 200
        # Well under the write timeout: nobody waited for the hog to go.
        assert took < 0.5, f"GET / took {took * 1000:.0f} ms beside the hog"
        # The write deadline drops it; meanwhile its backlog stays near the
        # transport's high-water mark (64 KiB), however much it pipelined.
        backlogs: list[int] = []

        def dropped(s: AsyncioServer) -> bool:
            backlogs.append(s.write_backlog)
            return s.open_connections == 0

        await server.wait_until(dropped, timeout=10)
        assert max(backlogs) < 256 * 1024, max(backlogs)
    finally:
        hog.close()


@pytest.mark.asyncio
async def test_graceful_shutdown_finishes_sleepers_and_closes_idlers(
    live: LiveFactory,
) -> None:
    server = live(sleep_seconds=0.3)
    async with (
        opened(server.port) as (idle_reader, idle_writer),
        opened(server.port) as (half_reader, half_writer),
    ):
        idle_writer.write(GET)
        assert (await read_response(idle_reader)).status == 200
        half_writer.write(b"GET / HTTP/1.1\r\nHo")  # not a request yet
        sleeper = asyncio.create_task(fetch(server.port, "/sleep"))
        await server.wait_until(lambda s: s.sleeping == 1 and s.open_connections == 3)
        stopping = asyncio.create_task(server.shutdown())
        for reader in (idle_reader, half_reader):
            closed, took = await timed(at_eof(reader))
            assert closed
            assert took < 0.2, f"closed after {took:.2f} s, not at once"
        reply = await sleeper
        assert reply.status == 200
        assert reply.header("connection") == "close"
        assert await asyncio.wait_for(stopping, 5) == 0
    with pytest.raises(ConnectionRefusedError):
        await fetch(server.port)


@pytest.mark.asyncio
async def test_client_resets_leave_no_traceback(
    live: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = live(sleep_seconds=0.1)
    sleeper = connect(server.port)
    sleeper.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
    await server.wait_until(lambda s: s.sleeping == 1)
    reset(sleeper)  # the reply will meet a dead socket
    burst = connect(server.port)
    burst.sendall(GET * 500)
    reset(burst)  # gone while its replies are being written
    half = connect(server.port)
    half.sendall(b"GET / HTTP/1.1\r\nHo")
    reset(half)
    await server.wait_until(lambda s: s.open_connections == 0)
    assert (await fetch(server.port)).status == 200
    trouble = [
        record
        for record in caplog.records
        if record.levelno >= logging.WARNING or record.exc_info
    ]
    assert not trouble, [record.getMessage() for record in trouble]


# -- in-process: the loop choice --


def test_loop_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loop_factory(LoopChoice.ASYNCIO) is asyncio.new_event_loop
    assert loop_factory(LoopChoice.AUTO) is uvloop.new_event_loop
    assert loop_factory(LoopChoice.UVLOOP) is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert loop_factory(LoopChoice.AUTO) is asyncio.new_event_loop
    with pytest.raises(LoopUnavailable, match="uvloop is not installed"):
        loop_factory(LoopChoice.UVLOOP)


def test_missing_uvloop_requested_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert serve(replace(BASE, loop=LoopChoice.UVLOOP)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error" in err
    assert "uvloop" in err


# -- the program: command line and signals --


@pytest.mark.parametrize(
    ("choice", "shown"),
    [("auto", "uvloop"), ("asyncio", "asyncio"), ("uvloop", "uvloop")],
)
def test_listening_line_names_the_loop(
    server_factory: ServerFactory, choice: str, shown: str
) -> None:
    server = server_factory("asyncio", "--loop", choice)
    server.wait_for_log(
        rf"Listening on http://127\.0\.0\.1:{server.port} \(asyncio, {shown}\)$"
    )
    assert request(server.port).status == 200


def test_missing_uvloop_exits_2_from_the_command_line() -> None:
    code = (
        "import sys, runpy; sys.modules['uvloop'] = None; "
        "sys.argv = ['asyncio_server', '--loop', 'uvloop', '--port', '0']; "
        "runpy.run_module('asyncio_server', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "uvloop" in done.stderr
    assert "Traceback" not in done.stderr
