"""Samples and their summaries: exact percentiles over every measurement.

A bench that reports a histogram's estimate or a sampled subset can hide the
one slow request the reader came to see, so every latency is kept and the
percentiles are read off the sorted list (nearest rank: the value is one that
was actually measured, and p100 is the maximum).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NS_PER_SECOND = 1_000_000_000
PERCENTILES = (50, 90, 99)


@dataclass(frozen=True, slots=True)
class Sample:
    """One request as the client saw it.

    ``start_ns`` is measured from the start of its run (so samples of one run
    share a time axis for the timeline plot); ``latency_ns`` runs from just
    before the connection was opened (or the request written, on a reused
    connection) to the last byte of the response.
    """

    route: str
    start_ns: int
    latency_ns: int
    status: int | None = None
    """The response's status code; None when no full response arrived."""
    error: str | None = None
    """Why the request failed (a status other than 200 counts too)."""
    sent_ns: int | None = None
    """When the request had been handed to the socket, on the same time axis
    as ``start_ns``; None when it never was (a refused connect, say)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.latency_ns

    @property
    def since_sent_ns(self) -> int | None:
        """From the request's send to its answer: the latency without the
        client's own connect (None when it was never sent)."""
        return None if self.sent_ns is None else self.end_ns - self.sent_ns


@dataclass(frozen=True, slots=True)
class Summary:
    """Count, errors, latency percentiles (seconds) and throughput of one route.

    The percentiles and the maximum are over successful requests only: a
    refused connection fails in microseconds and would flatter the figures.
    They are None when no request succeeded.
    """

    count: int
    errors: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    throughput: float
    """Successful responses per second, from the first send to the last reply."""

    def as_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "errors": self.errors,
            "latency_s": {
                "p50": self.p50,
                "p90": self.p90,
                "p99": self.p99,
                "max": self.max,
            },
            "throughput_rps": self.throughput,
        }


def percentile(ordered: Sequence[float], pct: float) -> float:
    """The nearest-rank ``pct`` percentile of an ascending, non-empty sequence."""
    if not ordered:
        raise ValueError("percentile of no samples")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile {pct} is not in (0, 100]")
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarise(samples: Iterable[Sample]) -> Summary:
    """Summarise one route's samples (any order)."""
    everything = list(samples)
    good = [sample for sample in everything if sample.ok]
    latencies = sorted(sample.latency_ns / NS_PER_SECOND for sample in good)
    if not latencies:
        return Summary(len(everything), len(everything), None, None, None, None, 0.0)
    p50, p90, p99 = (percentile(latencies, pct) for pct in PERCENTILES)
    span_ns = max(s.end_ns for s in good) - min(s.start_ns for s in good)
    throughput = len(good) / (span_ns / NS_PER_SECOND) if span_ns > 0 else 0.0
    return Summary(
        count=len(everything),
        errors=len(everything) - len(good),
        p50=p50,
        p90=p90,
        p99=p99,
        max=latencies[-1],
        throughput=throughput,
    )
