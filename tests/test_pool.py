"""The book's thread pool on its own, without HTTP (book-spec A1, D, E, G2, G4).

Every wait here is bounded: barriers and events carry timeouts, so a broken
pool fails a test instead of hanging the suite.
"""

from __future__ import annotations

import ast
import logging
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from threaded import pool as pool_module
from threaded.pool import (
    JOIN_SLICE,
    Channel,
    ChannelClosedError,
    PoolCreationError,
    PoolShutDownError,
    ThreadPool,
)

WAIT = 5.0  # seconds any single wait may take before the test fails


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="threaded.pool")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_the_pool_knows_nothing_of_http_or_sockets() -> None:
    """Book A1: the pool is a library of its own, usable for any work."""
    tree = ast.parse(Path(pool_module.__file__).read_text(encoding="utf-8"))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
        )
    }
    forbidden = {"socket", "selectors", "ssl", "http", "asyncio", "common"}
    assert not imported & forbidden, imported & forbidden


# -- creation ---------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1])
def test_size_below_one_is_a_value_error(size: int) -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        ThreadPool(size)


@pytest.mark.parametrize("size", [0, -3])
def test_build_reports_a_pool_creation_error(size: int) -> None:
    with pytest.raises(PoolCreationError):
        ThreadPool.build(size)


def test_build_returns_a_working_pool() -> None:
    with ThreadPool.build(2) as pool:
        assert pool.size == 2
        assert [worker.id for worker in pool.workers] == [0, 1]
        assert all(worker.thread.is_alive() for worker in pool.workers)


def test_a_thread_that_cannot_start_undoes_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = set(threading.enumerate())
    real_start = threading.Thread.start
    started = 0

    def start(thread: threading.Thread) -> None:
        nonlocal started
        if thread.name.startswith("worker-") and started == 2:
            raise RuntimeError("can't start new thread")
        started += thread.name.startswith("worker-")
        real_start(thread)

    monkeypatch.setattr(pool_module.threading.Thread, "start", start)
    with pytest.raises(PoolCreationError, match="only 2 of 4"):
        ThreadPool.build(4)
    assert set(threading.enumerate()) == before


# -- running jobs --------------------------------------------------------------


def test_every_job_runs_exactly_once() -> None:
    counts = [0] * 200
    lock = threading.Lock()

    def job(index: int) -> None:
        with lock:
            counts[index] += 1

    with ThreadPool(4) as pool:
        for index in range(len(counts)):
            pool.execute(partial(job, index))
    assert counts == [1] * len(counts)


def test_jobs_are_taken_in_fifo_order() -> None:
    order: list[int] = []
    with ThreadPool(1) as pool:
        for index in range(50):
            pool.execute(partial(order.append, index))
    assert order == list(range(50))


@pytest.mark.parametrize("size", [1, 4, 8])
def test_all_workers_run_jobs_at_once(size: int) -> None:
    """A barrier of ``size`` parties completes only if ``size`` jobs run together."""
    barrier = threading.Barrier(size, timeout=WAIT)
    threads: set[str] = set()

    def job() -> None:
        threads.add(threading.current_thread().name)
        barrier.wait()

    with ThreadPool(size) as pool:
        for _ in range(size):
            pool.execute(job)
    assert not barrier.broken
    assert len(threads) == size


def test_a_long_job_does_not_block_the_others() -> None:
    """The lock is held only to take a job (the book's listing 21-20, not 21-21)."""
    release = threading.Event()
    done = threading.Event()
    with ThreadPool(2) as pool:
        pool.execute(lambda: release.wait(WAIT))
        pool.execute(done.set)
        assert done.wait(WAIT)
        release.set()


def test_the_pool_serves_non_http_work() -> None:
    """Book G4: the pool is a library, usable for any job."""
    results: dict[int, int] = {}
    with ThreadPool(3) as pool:
        for number in range(20):
            pool.execute(partial(results.__setitem__, number, number**2))
    assert results == {number: number**2 for number in range(20)}


# -- failures -------------------------------------------------------------------


def test_a_raising_job_is_logged_and_every_worker_lives_on(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    size = 4
    failing = threading.Barrier(size, timeout=WAIT)
    working = threading.Barrier(size, timeout=WAIT)

    def explode() -> None:
        failing.wait()  # one raising job per worker, all at once
        raise RuntimeError("boom")

    with ThreadPool(size) as pool:
        for _ in range(size):
            pool.execute(explode)
        for _ in range(size):  # completes only with all four workers alive
            pool.execute(working.wait)
        pool.execute(lambda: None)
    assert not failing.broken
    assert not working.broken
    errors = [record for record in debug_log.records if record.levelno == logging.ERROR]
    # The barrier gave each worker exactly one raising job; each was logged
    # with its traceback and the worker's id.
    assert {record.getMessage() for record in errors} == {
        f"Worker {worker_id}: the job raised; carrying on." for worker_id in range(size)
    }
    assert all(
        record.exc_info and record.exc_info[0] is RuntimeError for record in errors
    )


def test_even_system_exit_does_not_end_a_worker() -> None:
    def leave() -> None:
        raise SystemExit(3)

    barrier = threading.Barrier(2, timeout=WAIT)
    with ThreadPool(2) as pool:
        pool.execute(leave)
        pool.execute(leave)
        pool.execute(barrier.wait)
        pool.execute(barrier.wait)
    assert not barrier.broken


# -- shutdown (the book's Drop) ------------------------------------------------------


def test_shutdown_joins_every_thread() -> None:
    before = set(threading.enumerate())
    pool = ThreadPool(4)
    assert len(set(threading.enumerate()) - before) == 4
    assert pool.shutdown() is True
    assert set(threading.enumerate()) == before
    assert not any(worker.thread.is_alive() for worker in pool.workers)


def test_leaving_the_with_block_joins_every_thread() -> None:
    before = set(threading.enumerate())
    with ThreadPool(3) as pool:
        pool.execute(lambda: None)
    assert set(threading.enumerate()) == before


def test_closing_an_idle_pool_is_prompt() -> None:
    """Book E3: the channel is closed before the joins, so none waits forever."""
    pool = ThreadPool(8)
    started = time.monotonic()
    pool.shutdown()
    assert time.monotonic() - started < 1.0


def test_queued_jobs_finish_before_shutdown_returns() -> None:
    """Book E5: 8 slow jobs on 4 workers; closing the pool still runs all 8."""
    gate = threading.Event()
    finished: list[int] = []
    pool = ThreadPool(4)

    def job(index: int) -> None:
        gate.wait(WAIT)
        finished.append(index)

    for index in range(8):
        pool.execute(partial(job, index))
    closer = threading.Thread(target=pool.shutdown)
    closer.start()
    gate.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert sorted(finished) == list(range(8))


def test_an_unbounded_shutdown_waits_for_a_job_of_many_join_slices() -> None:
    """Shutdown joins in short waits (for signals); without a timeout it still
    waits for the whole job, however many waits that takes."""
    gate = threading.Event()
    finished = threading.Event()
    pool = ThreadPool(1)

    def job() -> None:
        gate.wait(WAIT)
        finished.set()

    pool.execute(job)
    opener = threading.Timer(5 * JOIN_SLICE, gate.set)
    opener.start()
    try:
        assert pool.shutdown() is True
    finally:
        opener.cancel()
    assert finished.is_set()


def test_execute_after_shutdown_is_a_clear_error() -> None:
    pool = ThreadPool(1)
    pool.shutdown()
    with pytest.raises(PoolShutDownError, match="shut down"):
        pool.execute(lambda: None)
    with pytest.raises(PoolShutDownError):
        pool.try_execute(lambda: None)


def test_shutdown_twice_is_harmless() -> None:
    pool = ThreadPool(2)
    assert pool.shutdown()
    assert pool.shutdown()


def test_a_bounded_shutdown_gives_up_on_a_hung_job() -> None:
    release = threading.Event()
    pool = ThreadPool(2)
    pool.execute(lambda: release.wait(WAIT))
    started = time.monotonic()
    assert pool.shutdown(timeout=0.2) is False
    assert time.monotonic() - started < 2.0
    release.set()
    assert pool.shutdown(timeout=WAIT) is True


def test_a_job_may_shut_its_own_pool_down() -> None:
    done = threading.Event()
    pool = ThreadPool(2)

    def stop() -> None:
        pool.shutdown()
        done.set()

    pool.execute(stop)
    assert done.wait(WAIT)
    assert pool.shutdown(timeout=WAIT)


def test_the_books_messages_carry_the_worker_ids(
    debug_log: pytest.LogCaptureFixture,
) -> None:
    size = 4
    barrier = threading.Barrier(size, timeout=WAIT)
    with ThreadPool(size) as pool:
        for _ in range(size):
            pool.execute(barrier.wait)
    lines = messages(debug_log)
    for worker_id in range(size):
        assert f"Worker {worker_id} got a job; executing." in lines
        # Book E8: one of each per worker, in no fixed order.
        assert lines.count(f"Shutting down worker {worker_id}") == 1
        assert lines.count(f"Worker {worker_id} disconnected; shutting down.") == 1
    # Book E2: the joins go in id order.
    joins = [line for line in lines if line.startswith("Shutting down worker")]
    assert joins == [f"Shutting down worker {worker_id}" for worker_id in range(size)]


# -- the channel ------------------------------------------------------------------


def test_channel_is_fifo_and_reports_closed_when_drained() -> None:
    channel: Channel[int] = Channel()
    for item in range(3):
        assert channel.send(item)
    channel.close()
    assert [channel.recv() for _ in range(4)] == [0, 1, 2, None]
    with pytest.raises(ChannelClosedError):
        channel.send(9)
    with pytest.raises(ChannelClosedError):
        channel.try_send(9)


def test_a_full_channel_refuses_without_waiting() -> None:
    channel: Channel[str] = Channel(capacity=2)
    assert channel.try_send("a")
    assert channel.try_send("b")
    started = time.monotonic()
    assert channel.try_send("c") is False
    assert channel.send("c", timeout=0.05) is False
    assert time.monotonic() - started < 1.0
    assert len(channel) == 2
    assert channel.recv() == "a"
    assert channel.try_send("c")


def test_a_blocked_sender_gets_room_when_a_receiver_takes() -> None:
    channel: Channel[int] = Channel(capacity=1)
    channel.send(1)
    sent = threading.Event()
    sender = threading.Thread(target=lambda: (channel.send(2), sent.set()))
    sender.start()
    assert not sent.wait(0.05)
    assert channel.recv() == 1
    assert sent.wait(WAIT)
    sender.join(WAIT)
    assert channel.recv() == 2


def test_closing_wakes_a_waiting_receiver() -> None:
    channel: Channel[int] = Channel()
    got: list[int | None] = []
    receiver = threading.Thread(target=lambda: got.append(channel.recv()))
    receiver.start()
    channel.close()
    receiver.join(WAIT)
    assert got == [None]


def test_channel_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Channel(capacity=0)


def test_a_bounded_pool_reports_full() -> None:
    gate = threading.Event()
    with ThreadPool(1, capacity=1) as pool:
        pool.execute(lambda: gate.wait(WAIT))
        deadline = time.monotonic() + WAIT
        while pool.queued and time.monotonic() < deadline:  # the worker takes it
            time.sleep(0.001)
        assert pool.try_execute(lambda: None)
        assert pool.try_execute(lambda: None) is False
        gate.set()


def test_blocking_changes_nothing_in_the_books_mode() -> None:
    with ThreadPool(2) as pool:
        with pool.blocking():
            pass
        assert pool.nudge() is None
