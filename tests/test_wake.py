"""Waking workers on demand (threaded/wake.py): the policy the server adds.

Every wait here is bounded, as in test_pool.py.
"""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from threaded import wake as wake_module
from threaded.pool import ChannelClosedError
from threaded.wake import OnDemandChannel, WakeOnDemandPool

WAIT = 5.0  # seconds any single wait may take before the test fails


def worker_name() -> str:
    return threading.current_thread().name


def test_on_demand_the_awake_worker_takes_the_next_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker is woken while one is awake and has not said it waits.

    The cost of that rule, shown here on purpose: a job that waits without
    saying so holds up the queue (until STALL_SECONDS, set very long here).
    """
    monkeypatch.setattr(wake_module, "STALL_SECONDS", 60.0)
    release = threading.Event()
    started = threading.Event()
    ran: dict[str, str] = {}
    done = threading.Event()

    def first() -> None:
        ran["first"] = worker_name()
        started.set()
        release.wait(WAIT)

    def second() -> None:
        ran["second"] = worker_name()
        done.set()

    with WakeOnDemandPool(4) as pool:
        pool.execute(first)
        assert started.wait(WAIT)
        pool.execute(second)
        assert not done.wait(0.2), "a sleeping worker was woken"
        release.set()
        assert done.wait(WAIT)
    assert ran["second"] == ran["first"]


def test_on_demand_a_marked_wait_wakes_another_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wake_module, "STALL_SECONDS", 60.0)
    release = threading.Event()
    started = threading.Event()
    done = threading.Event()
    ran: dict[str, str] = {}

    def sleeper() -> None:
        ran["sleeper"] = worker_name()
        with pool.blocking():
            started.set()
            release.wait(WAIT)

    def quick() -> None:
        ran["quick"] = worker_name()
        done.set()

    with WakeOnDemandPool(4) as pool:
        pool.execute(sleeper)
        assert started.wait(WAIT)
        pool.execute(quick)
        assert done.wait(WAIT), "the queue waited for a worker marked as waiting"
        assert not release.is_set()
        release.set()
    assert ran["quick"] != ran["sleeper"]


def test_on_demand_a_queue_marked_for_jobs_that_wait_all_run_at_once() -> None:
    """Book C6 with on-demand waking: N marked waits occupy N workers together."""
    size = 4
    barrier = threading.Barrier(size, timeout=WAIT)
    threads: set[str] = set()

    def job() -> None:
        threads.add(worker_name())
        with pool.blocking():
            barrier.wait()

    with WakeOnDemandPool(size) as pool:
        for _ in range(size):
            pool.execute(job)
    assert not barrier.broken
    assert len(threads) == size


def test_on_demand_nudge_wakes_a_worker_when_the_queue_stalls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unmarked wait holds the queue up only until the owner's nudge()."""
    monkeypatch.setattr(wake_module, "STALL_SECONDS", 0.05)
    release = threading.Event()
    started = threading.Event()
    done = threading.Event()
    with WakeOnDemandPool(2) as pool:
        pool.execute(lambda: (started.set(), release.wait(WAIT)))
        assert started.wait(WAIT)
        pool.execute(done.set)
        deadline = time.monotonic() + WAIT
        while not done.is_set() and time.monotonic() < deadline:
            recheck = pool.nudge()
            assert recheck is None or 0 < recheck <= 0.05
            time.sleep(0.01)
        assert done.is_set()
        assert not release.is_set()
        assert pool.nudge() is None  # nothing queued: nothing to watch
        release.set()


def test_on_demand_every_job_still_runs_exactly_once() -> None:
    counts = [0] * 500
    lock = threading.Lock()

    def job(index: int) -> None:
        with lock:
            counts[index] += 1

    with WakeOnDemandPool(4, capacity=8) as pool:
        for index in range(len(counts)):
            pool.execute(partial(job, index))
    assert counts == [1] * len(counts)


def test_a_channel_needs_a_receiver() -> None:
    with pytest.raises(ValueError, match="receiver"):
        OnDemandChannel(receivers=0)


def test_a_job_no_worker_is_free_for_calls_when_stuck() -> None:
    """The one worker is inside blocking(): a job queued now calls the
    callback (the server cuts the watch short with it), and runs once the
    blocked job ends."""
    stuck = threading.Event()
    inside = threading.Event()
    ran = threading.Event()

    def waits() -> None:
        with pool.blocking():
            inside.set()
            stuck.wait(WAIT)  # what the callback ends, as the watch would

    with WakeOnDemandPool(1) as pool:
        pool.when_stuck(stuck.set)
        pool.execute(waits)
        assert inside.wait(WAIT)
        assert not stuck.is_set()
        pool.execute(ran.set)
        assert stuck.wait(WAIT)
        assert ran.wait(WAIT)


def test_a_standing_job_takes_no_room_and_is_never_refused() -> None:
    """send_always queues past a full channel, and the others keep their room."""
    channel: OnDemandChannel[str] = OnDemandChannel(1, receivers=1)
    assert channel.try_send("job")
    assert not channel.try_send("another")  # full
    channel.send_always("watch")  # queued all the same
    assert [channel.recv(), channel.recv()] == ["job", "watch"]
    channel.send_always("watch")
    assert channel.try_send("job")  # the standing one took no room
    assert not channel.try_send("another")
    channel.close()
    with pytest.raises(ChannelClosedError):
        channel.send_always("watch")
