"""``python -m bench.instructions``: what a request costs a server, in instructions.

This machine is shared, and a clock on it moves by a fifth from hour to
hour; so does any CPU-time figure. valgrind's callgrind counts the
user-space instructions a process executes instead: the same for the same
program and input whatever else the machine is doing. Each server is
started twice under callgrind (``--port 0``), warmed up, sent FEW and then
MANY requests one after another (wrk's identical head, or heads that
all differ; or over ``--concurrency N`` connections at once), and stopped with
SIGTERM (its graceful exit, after which callgrind writes its totals). The
difference of the two totals over MANY - FEW is one request's cost: the
start-up, the warm-up and the shutdown cancel out. The kernel's share
(system calls, TCP) is not counted, and valgrind runs a server some fifty
times slower: this compares designs, it does not time them.

The servers: our editions, the least each asyncio design can do
(:mod:`bench.peers.bare_asyncio`), the asyncio peers people would pick
instead, and the asyncio edition of another checkout (``--checkout
NAME=DIR``), such as the retired Protocol edition.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench.cli import OneLineParser, UsageError, choices_list, workload_list
from bench.model import ASYNCIO, THREADED
from bench.peer_servers import PEERS, Peer, free_port, installed, wait_answering
from bench.servers import LaunchedServer, ServerSettings
from bench.workloads import Workload, request_head
from common.runtime.cli import DefaultsHelp

PROG = "python -m bench.instructions"
INSTALL_VALGRIND = "valgrind is not on PATH; install it with: apt-get install valgrind"
MODES = ("close", "keep-alive")
WARM_UP = 50
"""Requests sent before counting starts, in both runs alike."""
WARM_UP_NUMBERS = 1_000_000_000
"""Where the warm-up's request numbers start: ``varied`` heads it never
sends again."""
WORKLOADS = (Workload.SAME, Workload.VARIED)
COUNTED_PEERS = ("uvicorn", "aiohttp")
"""Peers that serve from one process: callgrind follows no child."""
START_TIMEOUT = 120.0
"""Seconds for a server to start under valgrind (Python's start-up is slow there)."""
REPLY_TIMEOUT = 60.0
MAX_CONCURRENCY = 1000
"""The most senders at once (a thread each, in this process)."""
STOP_TIMEOUT = 120.0
_ROOT = Path(__file__).resolve().parent.parent
_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


class InstructionsError(RuntimeError):
    """A server did not start, answer or stop as it should; one line."""


@dataclass(frozen=True, slots=True)
class Server:
    """How to start one server to count: its command and where it runs."""

    name: str
    argv: tuple[str, ...]
    """Its command, with ``--port 0``: it says which port it got."""
    root: Path = _ROOT
    """The checkout it runs from (its working directory and PYTHONPATH)."""
    peer: Peer | None = None
    """A server people would pick instead, told which port to take (its
    command is the peer's, not ``argv``)."""

    def command(self, port: int) -> list[str]:
        return list(self.argv) if self.peer is None else self.peer.argv(port)


def _edition_argv(edition: str) -> tuple[str, ...]:
    """An edition's command as the other benches start it (``--port 0``)."""
    return tuple(ServerSettings(sleep_seconds=1.0, workers=4).argv(edition))


def builtin_servers() -> dict[str, Server]:
    """The servers this checkout can start, by name."""
    bare = (sys.executable, "-m", "bench.peers.bare_asyncio")
    servers = {
        "bare-protocol": Server("bare-protocol", (*bare, "protocol", "0")),
        "bare-streams": Server("bare-streams", (*bare, "streams", "0")),
        ASYNCIO: Server(ASYNCIO, _edition_argv(ASYNCIO)),
        THREADED: Server(THREADED, _edition_argv(THREADED)),
    }
    for peer in PEERS:
        if peer.name in COUNTED_PEERS:
            servers[peer.name] = Server(peer.name, (), peer=peer)
    return servers


def checkout_server(text: str) -> Server:
    """``NAME=DIR``: the asyncio edition of the checkout in DIR."""
    name, _, folder = text.partition("=")
    root = Path(folder).expanduser()
    if not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=DIR")
    if not (root / "asyncio_server" / "__main__.py").is_file():
        raise argparse.ArgumentTypeError(f"{folder}: no asyncio_server/ there")
    return Server(name, _edition_argv(ASYNCIO), root.resolve())


def total_instructions(callgrind_output: bytes) -> int:
    """The instruction count a callgrind output file ends with."""
    if match := _TOTALS.search(callgrind_output):
        return int(match.group(1))
    raise InstructionsError("callgrind wrote no totals (did the server exit?)")


def per_request(few: tuple[int, int], many: tuple[int, int]) -> float:
    """Instructions one request costs, from two runs' (requests, total)."""
    requests = many[0] - few[0]
    if requests <= 0:
        raise ValueError("the second run must send more requests")
    return (many[1] - few[1]) / requests


# -- the client ----------------------------------------------------------------


def read_reply(sock: socket.socket, buffer: bytearray) -> None:
    """Read one whole 200 reply (its head and Content-Length bytes) off ``sock``."""
    while b"\r\n\r\n" not in buffer:
        _receive(sock, buffer)
    head_end = buffer.index(b"\r\n\r\n") + 4
    if not buffer.startswith(b"HTTP/1.1 200 "):
        raise InstructionsError(f"answered {bytes(buffer[:40])!r}, not 200")
    length = _CONTENT_LENGTH.search(buffer, 0, head_end)
    if length is None:
        raise InstructionsError("a reply with no Content-Length")
    end = head_end + int(length.group(1))
    while len(buffer) < end:
        _receive(sock, buffer)
    del buffer[:end]


def _receive(sock: socket.socket, buffer: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise InstructionsError("the server closed before its reply was whole")
    buffer += chunk


def send_requests(
    port: int,
    count: int,
    mode: str,
    workload: Workload,
    *,
    first: int = 0,
    client: int = 0,
) -> None:
    """``count`` requests one after another, numbered from ``first``: a
    connection each, or one for all. ``client``: which of several sending
    at once (:func:`send_concurrently`) this is."""
    close = mode == "close"
    host = f"127.0.0.1:{port}"
    connection: socket.socket | None = None
    buffer = bytearray()
    try:
        for number in range(first, first + count):
            head = request_head(
                workload, host, number=number, connection=client, close=close
            )
            if connection is None:
                connection = socket.create_connection(
                    ("127.0.0.1", port), timeout=REPLY_TIMEOUT
                )
            connection.sendall(head)
            read_reply(connection, buffer)
            if close:
                connection.close()
                connection, buffer = None, bytearray()
    except OSError as error:
        raise InstructionsError(f"port {port}: {error}") from None
    finally:
        if connection is not None:
            connection.close()


def send_concurrently(
    port: int, count: int, mode: str, workload: Workload, clients: int
) -> None:
    """``count`` requests from ``clients`` senders at once (wrk's ``-c``),
    each sending its share one after another, all numbered apart: the server
    then has several connections ready at each turn of its loop, as under a
    load generator, not one."""
    shares = [count // clients + (index < count % clients) for index in range(clients)]
    starts = [sum(shares[:index]) for index in range(clients)]
    errors: list[InstructionsError] = []

    def send(index: int) -> None:
        try:
            send_requests(
                port, shares[index], mode, workload, first=starts[index], client=index
            )
        except InstructionsError as error:
            errors.append(error)

    senders = [threading.Thread(target=send, args=(index,)) for index in range(clients)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()  # each is bounded: its share, each reply within REPLY_TIMEOUT
    if errors:
        raise errors[0]


# -- one count -------------------------------------------------------------------


@contextlib.contextmanager
def _under_callgrind(server: Server, output: Path) -> Iterator[int]:
    """Start ``server`` under callgrind, yield its port; stop it with SIGTERM
    on the way out."""
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={output}"]
    environment = dict(
        os.environ,
        PYTHONPATH=str(server.root),
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED="0",  # the same dict layouts in both runs: the same counts
    )
    port = 0 if server.peer is None else free_port()
    process = subprocess.Popen(
        [*argv, *server.command(port)],
        cwd=server.root,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    launched = LaunchedServer(server.name, process)
    try:
        threading.Thread(target=launched.drain, daemon=True).start()
        # Ours say which port they got; a peer, told its port, is polled
        # with a request (which both runs send alike).
        if server.peer is None:
            launched.listening.wait(START_TIMEOUT)
            port = launched.endpoint.port if launched.endpoint else 0
        elif not wait_answering(port, process, START_TIMEOUT):
            port = 0
        if not port:
            why = launched.last_words()
            raise InstructionsError(f"{server.name} did not start: {why}")
        yield port
    finally:
        status = launched.stop(STOP_TIMEOUT)
    # uvicorn re-raises the SIGTERM it has handled: a clean exit as well.
    if status not in (0, -signal.SIGTERM):
        why = launched.last_words()
        raise InstructionsError(f"{server.name} exited with status {status}: {why}")


@dataclass(frozen=True, slots=True)
class Load:
    """What each count sends: its heads and its connections."""

    workload: Workload
    mode: str
    clients: int = 1
    """Senders at once (``--concurrency``)."""

    @property
    def label(self) -> str:
        return f"{self.workload.value} {self.mode}"


def count(server: Server, load: Load, requests: int, folder: Path) -> int:
    """The instructions ``server`` executes from its start to its exit,
    having been sent the warm-up and then ``requests`` requests."""
    output = folder / f"{server.name}.{requests}.out"
    with _under_callgrind(server, output) as port:
        send_requests(port, WARM_UP, load.mode, load.workload, first=WARM_UP_NUMBERS)
        send_concurrently(port, requests, load.mode, load.workload, load.clients)
    return total_instructions(output.read_bytes())


def measure(server: Server, load: Load, few: int, many: int) -> float:
    """Instructions per request of ``server`` under ``load`` (two runs)."""
    with tempfile.TemporaryDirectory(prefix="hello-callgrind-") as name:
        folder = Path(name)
        small = count(server, load, few, folder)
        large = count(server, load, many, folder)
    return per_request((few, small), (many, large))


# -- the command line -------------------------------------------------------------


def _requests(text: str) -> tuple[int, int]:
    few, _, many = text.partition(",")
    if not (few.isdigit() and many.isdigit() and 0 < int(few) < int(many)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FEW,MANY (whole numbers, 0 < FEW < MANY)"
        )
    return int(few), int(many)


def _concurrency(text: str) -> int:
    if not (text.isdigit() and 1 <= int(text) <= MAX_CONCURRENCY):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number from 1 to {MAX_CONCURRENCY}"
        )
    return int(text)


def _modes(text: str) -> tuple[str, ...]:
    return choices_list(text, MODES, "a mode")


def _workloads(text: str) -> tuple[Workload, ...]:
    return workload_list(text, WORKLOADS)


def build_parser() -> argparse.ArgumentParser:
    known = builtin_servers()
    parser = OneLineParser(
        prog=PROG,
        description="What a request costs a server in user-space instructions, "
        "counted by valgrind's callgrind: two runs of FEW and MANY requests, "
        "one after another, the difference over MANY - FEW.",
        formatter_class=DefaultsHelp,
    )
    add = parser.add_argument
    add(
        "--servers",
        default="bare-protocol,bare-streams,asyncio",
        metavar="LIST",
        help=f"the servers to count, comma-separated: {', '.join(known)}",
    )
    add(
        "--checkout",
        type=checkout_server,
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also count the asyncio edition of the checkout in DIR, e.g. the "
        "retired Protocol edition: git worktree add ../protocol 7866d75 "
        "(repeatable) (default: none)",
    )
    add(
        "--workload",
        type=_workloads,
        default=",".join(workload.value for workload in WORKLOADS),
        metavar="LIST",
        help="same (wrk's identical head, which the caches answer), "
        "varied (every head its own target and X-Request-Id)",
    )
    add(
        "--mode",
        type=_modes,
        default=",".join(MODES),
        metavar="LIST",
        help="close (a connection per request), keep-alive (one for all)",
    )
    add(
        "--requests",
        type=_requests,
        default="200,1200",
        metavar="FEW,MANY",
        help="requests in the first and the second run",
    )
    add(
        "--concurrency",
        type=_concurrency,
        default="1",
        metavar="N",
        help="connections sending at once (wrk's -c), each its share of the "
        "requests one after another; 1: one request at a time",
    )
    return parser


def _chosen(args: argparse.Namespace) -> list[Server]:
    known = builtin_servers()
    names = [name for name in str(args.servers).split(",") if name]
    if unknown := [name for name in names if name not in known]:
        raise UsageError(f"--servers: no server called {unknown[0]!r}")
    chosen = [known[name] for name in names] + list(args.checkout)
    every = [server.name for server in chosen]
    if twice := sorted({name for name in every if every.count(name) > 1}):
        raise UsageError(f"the name {twice[0]!r} is used twice")
    if not chosen:
        raise UsageError("no server to count")
    for server in chosen:
        if server.peer is not None and not installed(server.peer):
            raise UsageError(f"{server.name} is not installed: pip install '.[peers]'")
    return chosen


def table(rows: dict[str, dict[str, float]], columns: Sequence[str]) -> str:
    """One line per server: thousands of instructions per request per load."""
    width = max(len("server"), *(len(name) for name in rows))
    lines = ["server".ljust(width) + "".join(f"{name:>19}" for name in columns)]
    for name, costs in rows.items():
        cells = "".join(f"{costs[column] / 1000:>18.1f}k" for column in columns)
        lines.append(name.ljust(width) + cells)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None) -> int:
    """Count, print the table; 0, or 2 on bad input, or 1 when a server fails."""
    out = sys.stdout if stdout is None else stdout
    try:
        args = build_parser().parse_args(argv)
        servers = _chosen(args)
        few, many = args.requests
        if args.concurrency > few:
            raise UsageError(
                f"--concurrency {args.concurrency} is more than FEW ({few})"
            )
        if shutil.which("valgrind") is None:
            raise UsageError(INSTALL_VALGRIND)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 2
    clients = args.concurrency
    loads = [
        Load(workload, mode, clients)
        for workload in args.workload
        for mode in args.mode
    ]
    rows: dict[str, dict[str, float]] = {}
    try:
        for server in servers:
            for load in loads:
                print(
                    f"{server.name}, {load.label}: {few} then {many}", file=sys.stderr
                )
                cost = measure(server, load, few, many)
                rows.setdefault(server.name, {})[load.label] = cost
    except InstructionsError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    sent = (
        "one after another" if clients == 1 else f"over {clients} connections at once"
    )
    out.write(
        f"Instructions per request (callgrind, user space; {few} then {many} "
        f"requests {sent}):\n"
    )
    out.write(table(rows, [load.label for load in loads]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
