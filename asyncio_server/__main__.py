"""``python -m asyncio_server``: the book's server on an event loop (port 7879)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys

from asyncio_server.loops import LoopUnavailable, loop_factory
from asyncio_server.server import AsyncioServer
from common.runtime.cli import Edition, Options, parse_options
from common.runtime.listener import handed_over
from common.runtime.logs import configure_logging, url
from common.runtime.resources import raise_open_file_limit
from common.runtime.signals import STOP_SIGNALS, StopPolicy
from common.runtime.signals import name as signal_name
from common.runtime.supervisor import supervise

log = logging.getLogger("hello.asyncio")


async def _run(options: Options, sock: socket.socket | None = None) -> int:
    server = AsyncioServer(options, sock=sock)
    try:
        await server.start()
    except OSError as error:  # one line, no traceback (the book unwraps it)
        where = url(options.host, options.port)
        print(f"error: cannot listen on {where}: {error}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()

    def at_once(signum: int) -> None:
        log.warning("%s again: exiting at once.", signal_name(signum))
        server.abort(128 + signum)

    policy = StopPolicy(lambda _: server.begin_shutdown(), at_once)
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, policy, signum)
    try:
        # Only now: once this line is out, a SIGTERM must find the handlers.
        server.announce()
        return await server.wait_stopped()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        server.abort(1)  # a no-op after a graceful stop
        await server.close()


def serve(options: Options, sock: socket.socket | None = None) -> int:
    """Run the server until it stops; the process exit status."""
    raise_open_file_limit()  # each connection is a descriptor
    if sock is None:  # --fd N, or systemd's socket activation
        sock = handed_over(options.fd)
    try:
        factory = loop_factory(options.loop)
    except LoopUnavailable as error:
        print(f"python -m asyncio_server: error: {error}", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_run(options, sock))
    except KeyboardInterrupt:  # before the handlers were installed
        return 128 + signal.SIGINT


def main(argv: list[str] | None = None) -> int:
    """Parse, set up logging, serve (or fork ``--processes N`` servers)."""
    options = parse_options(Edition.ASYNCIO, argv)
    configure_logging(options.log_level)
    if options.processes == 1:
        return serve(options)
    try:  # checked once in the parent, so that a bad --loop is one error
        factory = loop_factory(options.loop)
    except LoopUnavailable as error:
        print(f"python -m asyncio_server: error: {error}", file=sys.stderr)
        return 2
    name = "asyncio" if factory is asyncio.new_event_loop else "uvloop"
    return supervise(options, lambda sock: serve(options, sock), name)


if __name__ == "__main__":
    sys.exit(main())
