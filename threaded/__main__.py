"""``python -m threaded``: the book's server on 127.0.0.1:7878, four workers."""

from __future__ import annotations

import sys

from common.runtime.cli import Edition, parse_options
from common.runtime.logs import configure_logging, workers_detail
from common.runtime.supervisor import supervise
from threaded.server import serve


def main() -> None:
    options = parse_options(Edition.THREADED)
    configure_logging(options.log_level)
    if options.processes > 1:  # a parent that forks and supervises the servers
        details = workers_detail(options.workers)
        sys.exit(supervise(options, lambda sock: serve(options, sock), details))
    sys.exit(serve(options))


if __name__ == "__main__":
    main()
