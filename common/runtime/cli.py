"""The command line both editions share, parsed into a typed :class:`Options`.

Each ``__main__`` is then a few lines. A bad value ends the program with exit
status 2 and one line on stderr — never a traceback.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from common.limits import Limits
from common.runtime.resources import connection_cap

_DEFAULTS = Limits()
WORKERS = 4
"""The book's pool size: ``ThreadPool::new(4)``."""
QUEUE_SIZE = 1024
"""Jobs the threaded pool's channel holds before a newcomer gets 503."""


class Edition(enum.Enum):
    """The two shells around the one core, with the book's port for threaded."""

    THREADED = "threaded"
    ASYNCIO = "asyncio"

    @property
    def default_port(self) -> int:
        # 7878 is the book's ("rust" on a phone keypad); asyncio takes the next
        # one so that both editions can run side by side.
        return 7878 if self is Edition.THREADED else 7879

    @property
    def module(self) -> str:
        """What ``python -m`` runs: ``threaded`` or ``asyncio_server``."""
        return "threaded" if self is Edition.THREADED else "asyncio_server"


EDITION_MODULES = {edition.value: edition.module for edition in Edition}
"""Edition name → the module ``python -m`` runs (tests, the bench, the soak)."""


class LoopChoice(enum.Enum):
    """Which event loop the asyncio edition runs on."""

    AUTO = "auto"
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


@dataclass(frozen=True, slots=True)
class Options:
    """Everything a server needs to know from its command line."""

    edition: Edition
    host: str = "127.0.0.1"
    port: int = 7878
    sleep_seconds: float = 5.0
    log_level: str = "info"
    access_log: bool = True
    keep_alive_timeout: float = _DEFAULTS.keep_alive_timeout
    header_timeout: float = _DEFAULTS.header_timeout
    write_timeout: float = _DEFAULTS.write_timeout
    max_connections: int | None = None
    """None: what the open-file limit allows (:meth:`connection_limit`)."""
    max_requests: int | None = None
    shutdown_timeout: float = 10.0
    workers: int = WORKERS
    queue_size: int = QUEUE_SIZE
    loop: LoopChoice = LoopChoice.AUTO
    processes: int = 1
    fd: int | None = None
    """A listening socket inherited at this descriptor, served instead of
    binding (systemd's LISTEN_FDS does the same without the flag)."""
    spawn: bool = False
    """threaded: a thread per connection instead of the pool (Listing 21-11)."""
    one_cpu: bool = False
    """threaded: keep each server process on one CPU (``--one-cpu``, its
    default there; see :mod:`common.runtime.affinity`)."""

    def connection_limit(self) -> int:
        """``--max-connections``, or by default what the open-file limit
        (raised at start-up) leaves room for."""
        if self.max_connections is not None:
            return self.max_connections
        return connection_cap()

    def limits(self) -> Limits:
        """The protocol limits with this command line's timeouts."""
        return Limits(
            keep_alive_timeout=self.keep_alive_timeout,
            header_timeout=self.header_timeout,
            write_timeout=self.write_timeout,
        )


MAX_SECONDS = 86_400.0
"""The longest delay or timeout taken (a day): far below what ``poll``'s
millisecond timeout, a C int, can hold (24.8 days)."""


def _number(
    kind: Callable[[str], float],
    minimum: float,
    strict: bool,
    what: str,
    maximum: float = math.inf,
) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if math.isnan(value) or math.isinf(value) or value > maximum:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    return convert


_seconds = _number(
    float,
    0.0,
    True,
    f"a positive number of seconds, at most {MAX_SECONDS:.0f}",
    MAX_SECONDS,
)
_delay = _number(
    float, 0.0, False, f"a number of seconds from 0 to {MAX_SECONDS:.0f}", MAX_SECONDS
)
_count = _number(int, 1, False, "a whole number >= 1")


_MAX_DESCRIPTOR = 2**31 - 1  # a C int: larger ones overflow, or wrap round


def _descriptor(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= _MAX_DESCRIPTOR:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file descriptor")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not in 0..65535")
    return value


def _host(text: str) -> str:
    candidate = text.removeprefix("[").removesuffix("]")
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    # ASCII only: str.isalnum() alone would accept "héllo", which no resolver
    # takes as-is (RFC 1123 §2.1 host names are letters, digits and hyphens).
    if text and all(
        label
        and len(label) <= 63
        and label.isascii()
        and label.replace("-", "").isalnum()
        for label in labels
    ):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or host name")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and still exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default after its help, unless the help says it itself."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default:" in action.help:
            return action.help
        return super()._get_help_string(action)


def build_parser(edition: Edition) -> argparse.ArgumentParser:
    """The argparse parser for ``edition``; see the README for every flag."""
    threaded = edition is Edition.THREADED
    what = "a hand-built thread pool" if threaded else "asyncio"
    parser = _Parser(
        prog="python -m " + ("threaded" if threaded else "asyncio_server"),
        description=f"The Rust book's hello web server, served by {what}.",
        formatter_class=DefaultsHelp,
    )
    add = parser.add_argument
    add("--host", type=_host, default="127.0.0.1", help="address to listen on")
    add(
        "--port",
        type=_port,
        default=edition.default_port,
        help="port to listen on; 0 picks a free one (the log says which)",
    )
    add(
        "--sleep-seconds",
        type=_delay,
        default=5.0,
        help="how long GET /sleep waits before answering",
    )
    add(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="debug shows the book's worker messages (threaded) and each /sleep",
    )
    add(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log one line per response at info level (refusals and errors too)",
    )
    add(
        "--keep-alive-timeout",
        type=_seconds,
        default=_DEFAULTS.keep_alive_timeout,
        help="close a connection idle this long between requests",
    )
    add(
        "--header-timeout",
        type=_seconds,
        default=_DEFAULTS.header_timeout,
        help="answer 408 when a request head is not complete this long after its"
        " first byte (the body of one already answered: close, no answer)",
    )
    add(
        "--write-timeout",
        type=_seconds,
        default=_DEFAULTS.write_timeout,
        help="drop a client that takes none of its answers for this long",
    )
    add(
        "--max-connections",
        type=_count,
        default=None,
        help=(
            "answer 503 to connections beyond this many, once no idle or"
            " incomplete one is left to close (--spawn: at once) (default:"
            " the open-file limit less a tenth)"
        ),
    )
    add(
        "--max-requests",
        type=_count,
        default=None,
        help="shut down gracefully after this many responses (the book's take(2))",
    )
    add(
        "--shutdown-timeout",
        type=_seconds,
        default=10.0,
        help="on SIGINT/SIGTERM, how long in-flight requests may take to finish",
    )
    add(
        "--processes",
        type=_count,
        default=1,
        help="server processes sharing one listening socket, each with its own "
        "pool or loop, supervised by a parent that restarts any that dies",
    )
    add(
        "--fd",
        type=_descriptor,
        default=None,
        help="serve on the listening socket inherited at this descriptor instead"
        " of binding one (as with systemd's LISTEN_FDS, which needs no flag)",
    )
    if edition is Edition.THREADED:
        # No default here: given with --spawn, they are an error (see below).
        add(
            "--workers",
            type=_count,
            default=argparse.SUPPRESS,
            help=f"threads in the pool (default: {WORKERS})",
        )
        add(
            "--queue-size",
            type=_count,
            default=argparse.SUPPRESS,
            help="jobs that may wait for a worker before new ones get 503"
            f" (default: {QUEUE_SIZE})",
        )
        add(
            "--spawn",
            action="store_true",
            help="no pool: a new thread for each connection, as the book's"
            " Listing 21-11 (--max-connections bounds them)",
        )
        add(
            "--one-cpu",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="keep the server on one CPU (with --processes, each on its own):"
            " its threads share one interpreter lock, so a second CPU only makes"
            " every hand-off between them a cross-CPU wake-up",
        )
    else:
        add(
            "--loop",
            choices=[choice.value for choice in LoopChoice],
            default=LoopChoice.AUTO.value,
            help="event loop; auto uses uvloop when it is installed",
        )
    return parser


def parse_options(edition: Edition, argv: Sequence[str] | None = None) -> Options:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into :class:`Options`."""
    parser = build_parser(edition)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    threaded = edition is Edition.THREADED
    spawn = threaded and args.spawn
    if spawn:
        for flag in ("workers", "queue_size"):
            if hasattr(args, flag):
                option = "--" + flag.replace("_", "-")
                parser.error(f"{option} sizes the pool, and --spawn runs none")
    return Options(
        edition=edition,
        host=args.host,
        port=args.port,
        sleep_seconds=args.sleep_seconds,
        log_level=args.log_level,
        access_log=args.access_log,
        keep_alive_timeout=args.keep_alive_timeout,
        header_timeout=args.header_timeout,
        write_timeout=args.write_timeout,
        max_connections=(
            None if args.max_connections is None else int(args.max_connections)
        ),
        max_requests=None if args.max_requests is None else int(args.max_requests),
        shutdown_timeout=args.shutdown_timeout,
        workers=int(getattr(args, "workers", WORKERS)),
        queue_size=int(getattr(args, "queue_size", QUEUE_SIZE)),
        spawn=spawn,
        one_cpu=threaded and args.one_cpu,
        loop=LoopChoice.AUTO if threaded else LoopChoice(args.loop),
        processes=int(args.processes),
        fd=args.fd,
    )
