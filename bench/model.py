"""What a simple queueing model predicts, printed beside what was measured.

The book's point in numbers: a pool of ``workers`` threads serves C
simultaneous ``/sleep`` requests in waves, so the k-th to finish does so at
about ``ceil(k / workers) * sleep``; a thread per connection (``spawn``) and
an event loop sleep them all at once, so each takes about ``1 * sleep``. A
``GET /`` sent meanwhile to the pool waits in the job queue until the first
worker comes free; the other two answer it at once. The model ignores the
server's own overheads, so the measured figures should sit a little above
it, never far from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.stats import NS_PER_SECOND, Sample

FIT_TOLERANCE = 0.05
"""How close to the model a /sleep must finish to count as fitting it (5 %)."""

THREADED = "threaded"
SPAWN = "spawn"
"""``python -m threaded --spawn``: a thread per connection (Listing 21-11)."""
ASYNCIO = "asyncio"
EDITIONS = (THREADED, ASYNCIO)
DESIGNS = (THREADED, SPAWN, ASYNCIO)
"""The chapter's three designs, in its order: what the latency bench compares."""


@dataclass(frozen=True, slots=True)
class ModelFit:
    """How the answered ``/sleep`` requests sit against the model, one by one.

    The k-th to finish is compared with the model's time for rank k, timed
    from its own send: the model starts every request at once, while a client
    opening 1000 connections sends the last of them tens of milliseconds after
    the first, and that delay is the client's, not the server's.
    """

    within: int
    """Answered requests within ``tolerance`` of the model."""
    answered: int
    tolerance: float
    worst: float
    """The largest relative deviation, signed (+0.02: 2 % slower than the model)."""


@dataclass(frozen=True, slots=True)
class QueueModel:
    """The model of one edition, given the bench's settings."""

    edition: str
    sleep_seconds: float
    workers: int
    concurrency: int

    def sleep_latency(self, k: int) -> float:
        """Predicted latency (s) of the k-th ``/sleep`` to finish, k = 1..C."""
        if self.edition == THREADED:
            return math.ceil(k / self.workers) * self.sleep_seconds
        return self.sleep_seconds

    def first_free_worker(self) -> float:
        """When (s after the /sleeps arrive) a request behind them can start.

        Worker j (0-based) takes jobs j, j+w, j+2w, ... so it is busy until
        ``ceil((C - j) / w) * sleep``; the earliest of those is
        ``floor(C / w) * sleep`` (0 when some worker never got a /sleep).
        The event loop has no workers to wait for.
        """
        if self.edition != THREADED:
            return 0.0
        return (self.concurrency // self.workers) * self.sleep_seconds

    def hello_latency(self, sent_after: float) -> float:
        """Predicted latency (s) of a ``GET /`` sent ``sent_after`` s into the run."""
        return max(0.0, self.first_free_worker() - sent_after)

    def predict(self, route: str, measured: Sequence[Sample]) -> list[Sample]:
        """The model's sample for each of ``measured``, in the same order.

        All /sleep requests leave together, so the model says when the k-th
        of them to finish should finish: the measured one that finished k-th
        is paired with it (with its own send time). A ``GET /`` keeps its real
        send time, so that the model sees the same stream the server saw.
        """
        if route == "/sleep":
            by_end = sorted(range(len(measured)), key=lambda i: measured[i].end_ns)
            rank = {index: k for k, index in enumerate(by_end, start=1)}
            predicted = [self.sleep_latency(rank[i]) for i in range(len(measured))]
        else:
            predicted = [
                self.hello_latency(sample.start_ns / NS_PER_SECOND)
                for sample in measured
            ]
        return [
            Sample(route, sample.start_ns, round(latency * NS_PER_SECOND), 200)
            for sample, latency in zip(measured, predicted, strict=True)
        ]

    def fit(
        self, measured: Sequence[Sample], tolerance: float = FIT_TOLERANCE
    ) -> ModelFit | None:
        """The answered ``/sleep`` requests against the model (see :class:`ModelFit`).

        None when no request was answered after a recorded send.
        """
        answered = sorted(
            (sample for sample in measured if sample.ok and sample.sent_ns is not None),
            key=lambda sample: sample.end_ns,
        )
        deviations = []
        for k, sample in enumerate(answered, start=1):
            since_sent = sample.since_sent_ns
            assert since_sent is not None  # filtered above
            expected = self.sleep_latency(k)
            deviations.append(since_sent / NS_PER_SECOND / expected - 1)
        if not deviations:
            return None
        return ModelFit(
            within=sum(abs(deviation) <= tolerance for deviation in deviations),
            answered=len(deviations),
            tolerance=tolerance,
            worst=max(deviations, key=abs),
        )

    def describe(self) -> str:
        """One line saying what the model assumes, for the table's footnote."""
        sleep = f"{self.sleep_seconds:g} s"
        if self.edition == THREADED:
            return (
                f"threaded model: k-th /sleep at ceil(k/{self.workers}) x {sleep}; "
                f"/ waits for the first free worker "
                f"({self.first_free_worker():g} s after the start)"
            )
        if self.edition == SPAWN:
            return (
                f"spawn model: every /sleep at 1 x {sleep}, each on a thread of "
                "its own; / answered at once"
            )
        return f"asyncio model: every /sleep at 1 x {sleep}; / answered at once"
