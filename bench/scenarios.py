"""The latency scenario: C simultaneous ``/sleep`` and a stream of ``/`` meanwhile.

Every ``/sleep`` goes out at once, each on its own connection, so the server
must hold C of them together: a thread pool serves them in waves of
``workers``, an event loop all together. Once they are all on the wire, a
``GET /`` leaves every ``1/rate`` seconds on a fresh connection — open loop,
so a request is sent on time even when earlier ones are stuck (a closed loop
would wait for the stuck ones and hide the queueing it came to measure) —
until the last ``/sleep`` is answered. Everything stops at the edition's
deadline: what is unanswered by then counts as a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.client import Endpoint, fetch
from bench.footprint import Footprint
from bench.model import ModelFit, QueueModel
from bench.stats import NS_PER_SECOND, Sample, Summary, summarise

ROUTES = ("/sleep", "/")
MAX_HELLO_IN_FLIGHT = 256
"""Beyond this many unanswered ``GET /``, ticks are skipped (and counted)."""
STATUS_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class LatencySettings:
    """The knobs of one latency run, the same for every edition measured."""

    concurrency: int = 16
    sleep_seconds: float = 1.0
    workers: int = 4
    rate: float = 20.0
    """``GET /`` per second while the ``/sleep`` requests run."""
    duration: float | None = None
    """Time limit per edition (s); None: twice the slowest model plus 5 s."""

    def time_limit(self) -> float:
        if self.duration is not None:
            return self.duration
        waves = math.ceil(self.concurrency / self.workers)
        return 2 * waves * self.sleep_seconds + 5.0

    def model(self, edition: str) -> QueueModel:
        return QueueModel(edition, self.sleep_seconds, self.workers, self.concurrency)


@dataclass(frozen=True, slots=True)
class RouteResult:
    """One route of one edition: every sample, its summary, the model's view."""

    route: str
    samples: tuple[Sample, ...]
    summary: Summary
    model_samples: tuple[Sample, ...] | None
    """The model's prediction for each of ``samples``, index by index."""
    model: Summary | None
    fit: ModelFit | None = None
    """For ``/sleep`` with a model: how many finished within 5 % of it."""


@dataclass(frozen=True, slots=True)
class EditionRun:
    """Everything measured on one server."""

    name: str
    url: str
    details: str
    """From the server's start-up line (``threaded, 4 workers``) or ``target``."""
    started: bool
    """True when the bench started this server, False for a ``--target``."""
    routes: tuple[RouteResult, ...]
    wall_seconds: float
    skipped_hellos: int
    model: QueueModel | None
    footprint: Footprint | None = None
    """The server's peak threads and memory during the run (started ones)."""

    def route(self, route: str) -> RouteResult:
        return next(result for result in self.routes if result.route == route)


async def run_latency(
    name: str,
    endpoint: Endpoint,
    settings: LatencySettings,
    *,
    details: str,
    started: bool,
    model: QueueModel | None,
    status: Callable[[str], None] = lambda message: None,
) -> EditionRun:
    """Run the scenario against one server and pair it with its model."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.time_limit()
    origin = time.perf_counter_ns()
    concurrency = settings.concurrency
    sent = 0
    all_sent = asyncio.Event()

    def one_sent() -> None:
        nonlocal sent
        sent += 1
        if sent == concurrency:
            all_sent.set()

    sleeps = [
        asyncio.create_task(
            fetch(endpoint, "/sleep", origin, deadline=deadline, on_sent=one_sent)
        )
        for _ in range(concurrency)
    ]
    sleeps_done = asyncio.Event()
    gathered = asyncio.gather(*sleeps)

    def on_sleeps_done(future: asyncio.Future[list[Sample]]) -> None:
        sleeps_done.set()
        if not future.cancelled():
            future.exception()  # seen: an interrupted run must not log it again

    gathered.add_done_callback(on_sleeps_done)
    stream = _HelloStream(endpoint, origin, deadline, settings.rate)
    ticker = asyncio.create_task(
        _report(status, name, sleeps, stream=stream, finished=sleeps_done)
    )
    try:
        await _first(all_sent, sleeps_done)
        await stream.run(until=sleeps_done)
        sleep_samples = await gathered
        hello_samples = await stream.finish()
    finally:
        ticker.cancel()
        for task in (*sleeps, *stream.tasks):
            task.cancel()
    wall = (time.perf_counter_ns() - origin) / NS_PER_SECOND
    measured = {"/sleep": sleep_samples, "/": hello_samples}
    return EditionRun(
        name=name,
        url=endpoint.url,
        details=details,
        started=started,
        routes=tuple(_route(route, measured[route], model) for route in ROUTES),
        wall_seconds=wall,
        skipped_hellos=stream.skipped,
        model=model,
    )


def _route(route: str, samples: list[Sample], model: QueueModel | None) -> RouteResult:
    """Samples in send order, and the model's samples aligned with them."""
    ordered = tuple(sorted(samples, key=lambda sample: sample.start_ns))
    predicted = None if model is None else tuple(model.predict(route, ordered))
    return RouteResult(
        route=route,
        samples=ordered,
        summary=summarise(ordered),
        model_samples=predicted,
        model=None if predicted is None else summarise(predicted),
        fit=model.fit(ordered) if model is not None and route == "/sleep" else None,
    )


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class _HelloStream:
    """``GET /`` at a steady rate on fresh connections, bounded in flight."""

    def __init__(
        self, endpoint: Endpoint, origin: int, deadline: float, rate: float
    ) -> None:
        self._endpoint = endpoint
        self._origin = origin
        self._deadline = deadline
        self._interval = 1.0 / rate
        self.tasks: list[asyncio.Task[Sample]] = []
        self.skipped = 0

    @property
    def in_flight(self) -> int:
        return sum(not task.done() for task in self.tasks)

    @property
    def answered(self) -> int:
        return len(self.tasks) - self.in_flight

    async def run(self, *, until: asyncio.Event) -> None:
        """Send one request per tick until ``until`` is set or time runs out."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not until.is_set():
            tick += self._interval
            if tick >= self._deadline:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(tick):
                    await until.wait()
            if until.is_set():
                break
            if self.in_flight >= MAX_HELLO_IN_FLIGHT:
                self.skipped += 1
                continue
            self.tasks.append(
                asyncio.create_task(
                    fetch(self._endpoint, "/", self._origin, deadline=self._deadline)
                )
            )

    async def finish(self) -> list[Sample]:
        """Every request's sample, once each has its answer or its timeout."""
        return list(await asyncio.gather(*self.tasks))


async def _report(
    status: Callable[[str], None],
    name: str,
    sleeps: list[asyncio.Task[Sample]],
    *,
    stream: _HelloStream,
    finished: asyncio.Event,
) -> None:
    """Refresh the live status line until the /sleep requests are all done."""
    while True:
        done = sum(task.done() for task in sleeps)
        status(
            f"{name}: /sleep {done}/{len(sleeps)} answered, "
            f"/ {stream.answered}/{len(stream.tasks)} answered"
        )
        if finished.is_set() and not stream.in_flight:
            return
        await asyncio.sleep(STATUS_INTERVAL)
