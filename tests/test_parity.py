"""Both editions send the very same bytes for the same input, ``Date`` aside.

This is what "one protocol core" promises: the shells only move bytes. What
cannot be the same — how ``/sleep`` requests queue — is checked here too, so
the difference is stated by a test, not assumed.
"""

from __future__ import annotations

import threading
import time

import pytest
from cases import CASES, Case
from conftest import ServerFactory
from support import RunningServer, exchange_raw, without_date


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_same_bytes(case: Case, shared_servers: dict[str, RunningServer]) -> None:
    threaded = exchange_raw(shared_servers["threaded"].port, case.data)
    asyncio = exchange_raw(shared_servers["asyncio"].port, case.data)
    assert threaded, "threaded sent nothing"
    assert without_date(threaded) == without_date(asyncio)


def _sleep_at_once(port: int, count: int) -> tuple[list[float], list[bytes]]:
    """``count`` concurrent ``GET /sleep``, each on its own connection."""
    data = b"GET /sleep HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    times: list[float] = [0.0] * count
    answers: list[bytes] = [b""] * count

    def one(index: int) -> None:
        started = time.monotonic()
        answers[index] = exchange_raw(port, data)
        times[index] = time.monotonic() - started

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return sorted(times), answers


def test_only_how_sleep_queues_differs(server_factory: ServerFactory) -> None:
    """The one difference the project exists to show, and nothing else.

    Four ``/sleep`` at once: the same bytes from both editions, but two
    workers serve them in two waves (the book's pile-up) while the event
    loop sleeps all four together.
    """
    delay = 0.3
    threaded = server_factory(
        "threaded", "--workers", "2", "--sleep-seconds", str(delay)
    )
    asyncio = server_factory("asyncio", "--sleep-seconds", str(delay))
    pool_times, pool_answers = _sleep_at_once(threaded.port, 4)
    loop_times, loop_answers = _sleep_at_once(asyncio.port, 4)
    assert {without_date(a) for a in pool_answers + loop_answers} == {
        without_date(pool_answers[0])
    }
    assert b"HTTP/1.1 200 OK\r\n" in pool_answers[0]
    # threaded: two at ~1 x delay, two at ~2 x delay.
    assert all(delay <= t < 1.9 * delay for t in pool_times[:2]), pool_times
    assert all(2 * delay <= t < 3.5 * delay for t in pool_times[2:]), pool_times
    # asyncio: all four at ~1 x delay.
    assert all(delay <= t < 1.9 * delay for t in loop_times), loop_times
