"""``python -m asyncio_server``: the book's server on an event loop (port 7879)."""

from __future__ import annotations

import asyncio
import sys

from asyncio_server.loops import LoopUnavailable, loop_factory
from asyncio_server.server import serve
from common.runtime.cli import Edition, parse_options
from common.runtime.logs import configure_logging
from common.runtime.supervisor import supervise


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
