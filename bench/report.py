"""The results, three ways: a plain-text table, a JSON file and a plot.

The table puts the editions one under the other in the same columns, each
measured row followed by what the queueing model predicts for it, so that the
book's point reads straight down a column. The JSON keeps every raw sample
(integer nanoseconds) beside the summaries; the plot is optional and needs
matplotlib, from the project's ``plot`` extra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.footprint import Footprint
from bench.scenarios import EditionRun, LatencySettings, RouteResult
from bench.stats import NS_PER_SECOND, Summary
from bench.throughput import ThroughputRun

PLOT_EXTRA = "pip install '.[plot]'"
JSON_VERSION = 1

_LATENCY_HEAD = (
    f"{'edition':<10} {'route':<7} {'':<8} {'count':>6} {'errors':>6} "
    f"{'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9} {'req/s':>8} "
    f"{'threads':>7} {'RSS MiB':>7}"
)


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 1000:.{digits}f}"


def _row(
    name: str, route: str, kind: str, summary: Summary, errors: str, *, costs: str = ""
) -> str:
    return (
        f"{name:<10} {route:<7} {kind:<8} {summary.count:>6} {errors:>6} "
        f"{_ms(summary.p50):>9} {_ms(summary.p90):>9} {_ms(summary.p99):>9} "
        f"{_ms(summary.max):>9} {summary.throughput:>8.1f}{costs}"
    ).rstrip()


def _costs(footprint: Footprint | None) -> str:
    """The peak-threads and peak-RSS columns ("-": not read)."""
    threads = rss = "-"
    if footprint is not None:
        if footprint.peak_threads is not None:
            threads = str(footprint.peak_threads)
        if footprint.peak_rss_mib is not None:
            rss = f"{footprint.peak_rss_mib:.1f}"
    return f" {threads:>7} {rss:>7}"


def _route_rows(name: str, result: RouteResult, costs: str = "") -> list[str]:
    rows = [
        _row(
            name,
            result.route,
            "measured",
            result.summary,
            str(result.summary.errors),
            costs=costs,
        )
    ]
    if result.model is not None:
        rows.append(_row("", "", "model", result.model, "-"))
    return rows


def latency_table(settings: LatencySettings, runs: Sequence[EditionRun]) -> str:
    """The side-by-side table the bench prints on stdout."""
    lines = [
        f"GET /sleep x{settings.concurrency} at once (each on its own connection), "
        f"GET / at {settings.rate:g}/s meanwhile (fresh connections); "
        f"sleep {settings.sleep_seconds:g} s",
        "",
        _LATENCY_HEAD,
        "-" * len(_LATENCY_HEAD),
    ]
    for run in runs:
        for index, result in enumerate(run.routes):
            # The server's peaks belong to the run: on its first row only.
            costs = _costs(run.footprint) if index == 0 else ""
            lines.extend(_route_rows(run.name, result, costs))
    lines.append("")
    for run in runs:
        origin = "started by the bench" if run.started else "--target"
        lines.append(f"{run.name}: {run.url} ({run.details}; {origin})")
        if run.model is not None:
            lines.append("  " + run.model.describe())
        fit = run.route("/sleep").fit
        if fit is not None:
            lines.append(
                f"  /sleep against the model, each timed from its send: "
                f"{fit.within} of {fit.answered} within {fit.tolerance:.0%} "
                f"(furthest {fit.worst:+.1%})"
            )
        if run.skipped_hellos:
            lines.append(
                f"  {run.skipped_hellos} GET / not sent: "
                "too many were already waiting for an answer"
            )
        errors = _error_kinds(run)
        if errors:
            lines.append("  errors: " + ", ".join(errors))
    return "\n".join(lines) + "\n"


def _error_kinds(run: EditionRun) -> list[str]:
    counts: dict[str, int] = {}
    for result in run.routes:
        for sample in result.samples:
            if sample.error is not None:
                key = f"{result.route} {sample.error}"
                counts[key] = counts.get(key, 0) + 1
    return [f"{count} x {key}" for key, count in sorted(counts.items())]


_THROUGHPUT_HEAD = (
    f"{'edition':<11} {'workload':<8} {'connection':<10} {'client':<8} {'conns':>5} "
    f"{'requests':>9} {'errors':>6} {'req/s':>9} "
    f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'CPU µs/req':>10}"
)


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def throughput_table(runs: Sequence[ThroughputRun]) -> str:
    """Requests per second per edition and connection mode."""
    lines = [
        "GET / (the hello page) as fast as the client can, per edition and"
        " workload (same: one identical request, the cache-friendly best case;"
        " varied: every head differs; browser: Chromium's head)",
        "CPU µs/req: the server's user + system CPU (its child processes' too)"
        " over the load, per request answered (req/s x seconds)",
        "",
        _THROUGHPUT_HEAD,
        "-" * len(_THROUGHPUT_HEAD),
    ]
    lines.extend(
        f"{run.label:<11} {run.workload.value:<8} {run.mode:<10} {run.client:<8} "
        f"{run.connections:>5} "
        f"{run.requests:>9} {run.errors:>6} {run.requests_per_second:>9.0f} "
        f"{_ms(run.p50):>8} {_ms(run.p90):>8} {_ms(run.p99):>8} {_ms(run.max):>8} "
        f"{_us(run.cpu_us_per_request):>10}"
        for run in runs
    )
    return "\n".join(lines) + "\n"


def tails_table(runs: Sequence[ThroughputRun], rate: float) -> str:
    """Latency at one offered rate, every server side by side: tails compared
    at equal load, not at whatever rate each one reached. To 10 µs: at a
    rate every server keeps up with, tails lie well under a millisecond."""
    head = (
        f"{'server':<17} {'workload':<8} {'connection':<10} {'achieved':>9} "
        f"{'errors':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'max ms':>8}"
    )
    lines = [
        f"Tails at {rate:g} requests a second offered (latency including any"
        " time a request was due while the server held its connection)",
        "",
        head,
        "-" * len(head),
    ]
    lines.extend(
        f"{run.label:<17} {run.workload.value:<8} {run.mode:<10} "
        f"{run.requests_per_second:>9.0f} {run.errors:>6} {_ms(run.p50, 2):>8} "
        f"{_ms(run.p99, 2):>8} {_ms(run.p999, 2):>8} {_ms(run.max, 2):>8}"
        for run in runs
    )
    return "\n".join(lines) + "\n"


def scaling_table(runs: Sequence[ThroughputRun]) -> str:
    """Requests per second side by side for each ``--processes`` count.

    One row per server and connection mode that ran with more than one count;
    the speed-up is the last count's rate over the first's. Empty when there
    is nothing to compare.
    """
    counts = sorted({run.processes for run in runs})
    rates: dict[tuple[str, str, str], dict[int, float]] = {}
    for run in runs:
        key = (run.name, run.workload.value, run.mode)
        rates.setdefault(key, {})[run.processes] = run.requests_per_second
    rows = {key: by for key, by in rates.items() if len(by) > 1}
    if len(counts) < 2 or not rows:
        return ""
    heads = [f"{n} process" + ("es" if n > 1 else "") for n in counts]
    width = max(11, *(len(head) for head in heads))
    head = f"{'edition':<11} {'workload':<8} {'connection':<10} " + " ".join(
        f"{text:>{width}}" for text in heads
    )
    lines = [
        "Scaling with --processes: req/s of GET / (same client, same load)",
        "",
        head + f" {'speed-up':>9}",
        "-" * (len(head) + 10),
    ]
    for (name, workload, mode), by in rows.items():
        cells = " ".join(
            f"{by[n]:>{width}.0f}" if n in by else f"{'-':>{width}}" for n in counts
        )
        ran = sorted(by)
        first, last = by[ran[0]], by[ran[-1]]
        speedup = f"{last / first:.2f}x" if first > 0 else "-"
        lines.append(f"{name:<11} {workload:<8} {mode:<10} {cells} {speedup:>9}")
    return "\n".join(lines) + "\n"


# -- JSON -----------------------------------------------------------------------


def latency_json(
    settings: LatencySettings, runs: Sequence[EditionRun], loop: str
) -> dict[str, object]:
    """The documented JSON shape (see the README): settings, then per edition."""
    return {
        "bench": "latency",
        "version": JSON_VERSION,
        "client_loop": loop,
        "settings": {**asdict(settings), "time_limit": settings.time_limit()},
        "editions": [_edition_json(run) for run in runs],
    }


def _edition_json(run: EditionRun) -> dict[str, object]:
    routes: dict[str, object] = {}
    for result in run.routes:
        entry: dict[str, object] = {
            "summary": result.summary.as_dict(),
            "model": None if result.model is None else result.model.as_dict(),
            "samples": [
                {
                    "start_ns": sample.start_ns,
                    "latency_ns": sample.latency_ns,
                    "status": sample.status,
                    "error": sample.error,
                    "sent_ns": sample.sent_ns,
                }
                for sample in result.samples
            ],
        }
        if result.route == "/sleep":
            entry["model_fit"] = None if result.fit is None else asdict(result.fit)
        routes[result.route] = entry
    return {
        "name": run.name,
        "url": run.url,
        "details": run.details,
        "started": run.started,
        "wall_seconds": run.wall_seconds,
        "skipped_hellos": run.skipped_hellos,
        "model": None if run.model is None else asdict(run.model),
        "peak_threads": None if run.footprint is None else run.footprint.peak_threads,
        "peak_rss_mib": None if run.footprint is None else run.footprint.peak_rss_mib,
        "routes": routes,
    }


def throughput_json(runs: Sequence[ThroughputRun], seconds: float) -> dict[str, object]:
    return {
        "bench": "throughput",
        "version": JSON_VERSION,
        "duration": seconds,
        "runs": [run.as_dict() for run in runs],
    }


def write_json(path: Path, document: dict[str, object]) -> None:
    """Write atomically: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)


# -- plot -----------------------------------------------------------------------


def plot_available() -> bool:
    """True when matplotlib (the ``plot`` extra) can be imported."""
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional dependency
    except ImportError:
        return False
    return True


_COLOURS = {"/sleep": "tab:red", "/": "tab:blue"}


def write_plot(
    path: Path, settings: LatencySettings, runs: Sequence[EditionRun]
) -> None:
    """Per edition: a timeline of every request (top) and the distribution.

    The timeline draws each request as a bar from its send to its answer, one
    row per request (the /sleep ones first), with a tick where the model says
    it should end: the thread pool's waves and the ``GET /`` stuck behind
    them stand out at a glance. The bottom row is each route's empirical
    distribution, the model's dashed beside it.
    """
    import matplotlib  # noqa: PLC0415 - optional dependency

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt  # noqa: PLC0415

    columns = max(1, len(runs))
    figure, axes = plt.subplots(
        2, columns, figsize=(5.5 * columns, 8), squeeze=False, sharex="row"
    )
    for column, run in enumerate(runs):
        _plot_timeline(axes[0][column], run)
        _plot_distribution(axes[1][column], run)
    figure.suptitle(
        f"{settings.concurrency} x GET /sleep ({settings.sleep_seconds:g} s) "
        f"and GET / at {settings.rate:g}/s"
    )
    # One legend for the whole figure, below it: inside an axis it would
    # cover the very bars it explains.
    labelled: dict[str, Any] = {}
    for axis in (axes[0][0], axes[1][0]):
        handles, labels = axis.get_legend_handles_labels()
        labelled.update(zip(labels, handles, strict=True))
    figure.legend(
        list(labelled.values()),
        list(labelled),
        loc="lower center",
        ncol=len(labelled),
        fontsize="small",
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _seconds(ns: int) -> float:
    return ns / NS_PER_SECOND


def _plot_timeline(axis: Any, run: EditionRun) -> None:
    row = 0
    for result in run.routes:
        colour = _COLOURS.get(result.route, "tab:grey")
        pairs = list(
            zip(result.samples, result.model_samples or result.samples, strict=True)
        )
        if result.route == "/sleep":  # they leave together: show them by finish
            pairs.sort(key=lambda pair: pair[0].end_ns)
        rows = list(range(row, row + len(pairs)))
        axis.hlines(
            rows,
            [_seconds(measured.start_ns) for measured, _ in pairs],
            [_seconds(measured.end_ns) for measured, _ in pairs],
            colors=[colour if measured.ok else "black" for measured, _ in pairs],
            linewidth=2,
            label=f"GET {result.route}",
        )
        if result.model_samples is not None:
            axis.scatter(
                [_seconds(model.end_ns) for _, model in pairs],
                rows,
                marker="|",
                color="black",
                s=40,
                label="model: when it should end" if row == 0 else None,
            )
        row += len(pairs)
    axis.invert_yaxis()  # first request on top, like a log
    axis.set_title(f"{run.name} ({run.details})")
    axis.set_xlabel("time since the first request (s)")
    axis.set_ylabel("request")


def _plot_distribution(axis: Any, run: EditionRun) -> None:
    for result in run.routes:
        colour = _COLOURS.get(result.route, "tab:grey")
        curves = [(result.samples, "-", f"GET {result.route}")]
        if result.model_samples is not None:
            curves.append((result.model_samples, "--", f"model {result.route}"))
        for samples, style, label in curves:
            ordered = sorted(_seconds(s.latency_ns) for s in samples if s.ok)
            if not ordered:
                continue
            fractions = [i / len(ordered) for i in range(len(ordered) + 1)]
            axis.step(
                [ordered[0], *ordered],
                fractions,
                where="post",
                linestyle=style,
                color=colour,
                label=label,
            )
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("latency (s)")
    axis.set_ylabel("fraction answered within")
