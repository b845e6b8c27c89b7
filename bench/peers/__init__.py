"""The servers people would pick instead, each serving the same three routes.

Every peer answers ``/`` with our hello page, ``/sleep`` with the same page
after ``HELLO_SLEEP_SECONDS`` (default 1), and anything else with our 404 page,
so ``python -m bench throughput --peers`` compares like with like. They are
started by the benchmark, one process each, on loopback only.
"""

from __future__ import annotations

import os
import sys

from common.routes import Pages

PAGES = Pages.load()
SLEEP_SECONDS = float(os.environ.get("HELLO_SLEEP_SECONDS", "1"))
CONTENT_TYPE = "text/html; charset=utf-8"


def page_for(path: str) -> tuple[int, bytes, float]:
    """(status, body, delay) for a path, as our own Router decides it."""
    if path == "/":
        return 200, PAGES.hello, 0.0
    if path == "/sleep":
        return 200, PAGES.hello, SLEEP_SECONDS
    return 404, PAGES.not_found, 0.0


def port_argument(program: str) -> int:
    """The one argument a peer takes, its port; a usage line and exit 2 otherwise."""
    arguments = sys.argv[1:]
    if len(arguments) == 1 and arguments[0].isdigit() and int(arguments[0]) < 65536:
        return int(arguments[0])
    sys.stderr.write(f"usage: python -m {program} PORT  (0-65535, on 127.0.0.1)\n")
    sys.exit(2)
