"""``python -m threaded``: the book's server on 127.0.0.1:7878, four workers
(or, with ``--spawn``, a thread per connection: the book's Listing 21-11)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator

from common.runtime.affinity import keep_to_one_cpu
from common.runtime.cli import Edition, Options, parse_options
from common.runtime.listener import handed_over
from common.runtime.logs import (
    configure_logging,
    listening_message,
    url,
    workers_detail,
)
from common.runtime.resources import raise_open_file_limit
from common.runtime.signals import StopPolicy, stop_signals_handled
from common.runtime.signals import name as signal_name
from common.runtime.supervisor import supervise
from threaded.pool import PoolCreationError
from threaded.server import ThreadedServer
from threaded.spawn import SPAWN_DETAIL, SpawningServer

logger = logging.getLogger("threaded.server")


def serve(options: Options, sock: socket.socket | None = None) -> int:
    """Run the threaded server until a signal or ``--max-requests``; the exit status.

    A bind or thread failure is one line on stderr and status 1, never a
    traceback (the book unwraps both, A3 and F6).
    """
    raise_open_file_limit()  # each connection is a descriptor
    if options.one_cpu:
        keep_to_one_cpu()  # before any thread starts: they all inherit it
    if sock is None:  # --fd N, or systemd's socket activation
        sock = handed_over(options.fd)
    server: ThreadedServer | SpawningServer
    try:
        if options.spawn:
            server = SpawningServer(options, sock)
        else:
            server = ThreadedServer(options, sock)
    except OSError as error:
        where = url(options.host, options.port)
        print(f"error: cannot listen on {where}: {error}", file=sys.stderr)
        return 1
    except PoolCreationError as error:
        print(f"error: cannot start the workers: {error}", file=sys.stderr)
        return 1
    details = design_detail(options)
    on_main = threading.current_thread() is threading.main_thread()
    # Elsewhere signals are the embedding program's business.
    with signals_handled(server) if on_main else contextlib.nullcontext():
        # Only now: once this line is out, a SIGTERM must find the handlers.
        logger.info("%s", listening_message(options, server.port, details, server.host))
        server.serve_forever()
    return 0


@contextlib.contextmanager
def signals_handled(server: ThreadedServer | SpawningServer) -> Iterator[None]:
    """SIGINT/SIGTERM stop ``server`` while the block runs (main thread only);
    each also wakes the acceptor. Its wake-up fd is a duplicate of the
    acceptor's wake socket, which the shutdown closes before this ends."""
    policy = StopPolicy(lambda _: server.request_stop(), exit_at_once)
    wakeup = os.dup(server.wakeup_socket.fileno())  # non-blocking, like it
    try:
        with stop_signals_handled(policy, wakeup):
            yield
    finally:
        os.close(wakeup)


def design_detail(options: Options) -> str:
    """The start-up line's detail: ``4 workers``, or ``a thread per connection``."""
    return SPAWN_DETAIL if options.spawn else workers_detail(options.workers)


def exit_at_once(signum: int) -> None:
    """A second signal: no waiting for workers (``os._exit``: threads run on)."""
    # Not logging: the interrupted code may be inside the logging module.
    os.write(2, f"{signal_name(signum)} again: exiting at once.\n".encode())
    os._exit(128 + signum)


def main() -> None:
    options = parse_options(Edition.THREADED)
    configure_logging(options.log_level)
    if options.processes > 1:  # a parent that forks and supervises the servers
        details = design_detail(options)
        sys.exit(supervise(options, lambda sock: serve(options, sock), details))
    sys.exit(serve(options))


if __name__ == "__main__":
    main()
