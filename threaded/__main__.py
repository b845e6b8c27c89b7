"""``python -m threaded``: the book's server on 127.0.0.1:7878, four workers."""

from __future__ import annotations

import sys

from common.cli import Edition, parse_options
from common.logs import configure_logging
from threaded.server import serve


def main() -> None:
    options = parse_options(Edition.THREADED)
    configure_logging(options.log_level)
    sys.exit(serve(options))


if __name__ == "__main__":
    main()
