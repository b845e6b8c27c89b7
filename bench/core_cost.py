"""``python -m bench.core_cost``: what the sans-I/O core costs a request, no sockets.

Each workload's heads (:mod:`bench.workloads`) are made first, then fed one
by one to one :class:`~common.connection.HttpConnection` sharing the server's
caches, each exchange rendered to its bytes, as a shell does. Timed with
``time.perf_counter`` over the whole loop: microseconds per request, the
parse of a head never seen before (``varied``) against one the caches know
(``same``). A hot loop: in a server, with the sockets and the loop around
it, the same work costs more.
"""

from __future__ import annotations

import argparse
import time
from http import HTTPStatus

from bench.workloads import WORKLOADS, Workload, request_head
from common.connection import ExchangeCache, HttpConnection
from common.limits import Limits
from common.response import Responder
from common.routes import Pages, Router

HOST = "127.0.0.1:7878"


def cost(workload: Workload, requests: int) -> float:
    """Microseconds of core time per request of ``workload``."""
    router = Router(Pages.load(), sleep_seconds=5.0)
    limits = Limits()
    conn = HttpConnection(router, limits, ExchangeCache(router, limits))
    responder = Responder()
    heads = [
        request_head(workload, HOST, number=n, connection=n % 50, close=False)
        for n in range(requests)
    ]
    started = time.perf_counter()
    for head in heads:
        conn.receive(head)
        exchange = conn.next_exchange()
        if exchange is None or exchange.reply.status != HTTPStatus.OK:
            raise RuntimeError(f"{workload.value}: {head!r} was not answered 200")
        exchange.render(responder)
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.core_cost")
    parser.add_argument(
        "--requests", type=int, default=100_000, help="requests per workload"
    )
    requests = max(1, parser.parse_args().requests)
    for workload in WORKLOADS:
        print(f"{workload.value:<8} {cost(workload, requests):6.2f} us/request")


if __name__ == "__main__":
    main()
