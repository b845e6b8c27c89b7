"""The shared command line: defaults per edition, every flag, and clean errors."""

from __future__ import annotations

import logging
import re
import sys
import time
from http import HTTPStatus

import pytest

from common.budget import RequestBudget
from common.connection import Exchange
from common.limits import Limits
from common.routes import Reply
from common.runtime.cli import Edition, LoopChoice, Options, build_parser, parse_options
from common.runtime.logs import ACCESS_LOGGER, AccessLog, listening_message

THREADED, ASYNCIO = Edition.THREADED, Edition.ASYNCIO


def test_threaded_defaults() -> None:
    options = parse_options(THREADED, [])
    assert options == Options(
        edition=THREADED,
        host="127.0.0.1",
        port=7878,
        sleep_seconds=5.0,
        log_level="info",
        access_log=True,
        keep_alive_timeout=5.0,
        header_timeout=10.0,
        write_timeout=10.0,
        max_connections=None,
        max_requests=None,
        shutdown_timeout=10.0,
        workers=4,
        queue_size=1024,
        loop=LoopChoice.AUTO,
        one_cpu=True,
    )


def test_asyncio_defaults() -> None:
    options = parse_options(ASYNCIO, [])
    assert options.port == 7879
    assert options.loop is LoopChoice.AUTO
    assert options.sleep_seconds == 5.0
    assert options.edition is ASYNCIO
    assert not options.one_cpu  # one thread: nothing to keep together


def test_timeout_defaults_are_the_limits_defaults() -> None:
    options = parse_options(THREADED, [])
    defaults = Limits()
    assert options.keep_alive_timeout == defaults.keep_alive_timeout
    assert options.header_timeout == defaults.header_timeout
    assert options.write_timeout == defaults.write_timeout


@pytest.mark.parametrize(
    ("edition", "argv", "field", "expected"),
    [
        (THREADED, ["--host", "0.0.0.0"], "host", "0.0.0.0"),
        (THREADED, ["--host", "::1"], "host", "::1"),
        (THREADED, ["--host", "[::1]"], "host", "::1"),
        (THREADED, ["--host", "localhost"], "host", "localhost"),
        (THREADED, ["--host", "my-box.example.com."], "host", "my-box.example.com."),
        (THREADED, ["--port", "0"], "port", 0),
        (THREADED, ["--port", "65535"], "port", 65535),
        (ASYNCIO, ["--port", "8080"], "port", 8080),
        (THREADED, ["--sleep-seconds", "0"], "sleep_seconds", 0.0),
        (THREADED, ["--sleep-seconds", "0.25"], "sleep_seconds", 0.25),
        (THREADED, ["--log-level", "debug"], "log_level", "debug"),
        (ASYNCIO, ["--log-level", "warning"], "log_level", "warning"),
        (THREADED, ["--no-access-log"], "access_log", False),
        (THREADED, ["--access-log"], "access_log", True),
        (THREADED, ["--keep-alive-timeout", "1.5"], "keep_alive_timeout", 1.5),
        (THREADED, ["--header-timeout", "3"], "header_timeout", 3.0),
        (THREADED, ["--write-timeout", "2"], "write_timeout", 2.0),
        (THREADED, ["--sleep-seconds", "86400"], "sleep_seconds", 86400.0),  # a day
        (THREADED, ["--max-connections", "1"], "max_connections", 1),
        (THREADED, ["--max-requests", "2"], "max_requests", 2),
        (ASYNCIO, ["--max-requests", "2"], "max_requests", 2),
        (THREADED, ["--shutdown-timeout", "0.5"], "shutdown_timeout", 0.5),
        (THREADED, ["--workers", "1"], "workers", 1),
        (THREADED, ["--workers", "16"], "workers", 16),
        (THREADED, ["--queue-size", "8"], "queue_size", 8),
        (THREADED, ["--no-one-cpu"], "one_cpu", False),
        (ASYNCIO, ["--loop", "asyncio"], "loop", LoopChoice.ASYNCIO),
        (ASYNCIO, ["--loop", "uvloop"], "loop", LoopChoice.UVLOOP),
        (ASYNCIO, ["--port=9000"], "port", 9000),
    ],
)
def test_each_flag_is_parsed(
    edition: Edition, argv: list[str], field: str, expected: object
) -> None:
    value = getattr(parse_options(edition, argv), field)
    assert value == expected
    assert type(value) is type(expected)


def test_options_limits_carry_the_timeouts() -> None:
    argv = [
        "--keep-alive-timeout",
        "1",
        "--header-timeout",
        "2",
        "--write-timeout",
        "3",
    ]
    limits = parse_options(THREADED, argv).limits()
    assert (limits.keep_alive_timeout, limits.header_timeout, limits.write_timeout) == (
        1,
        2,
        3,
    )
    assert limits.max_request_line == Limits().max_request_line


def test_argv_defaults_to_sys_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["prog", "--port", "1234"])
    assert parse_options(ASYNCIO).port == 1234


@pytest.mark.parametrize(
    ("edition", "argv"),
    [
        (THREADED, ["--port", "70000"]),
        (THREADED, ["--port", "65536"]),
        (THREADED, ["--port", "-1"]),
        (THREADED, ["--port", "http"]),
        (THREADED, ["--workers", "0"]),
        (THREADED, ["--workers", "1.5"]),
        (THREADED, ["--queue-size", "0"]),
        (THREADED, ["--sleep-seconds", "-1"]),
        (THREADED, ["--sleep-seconds", "nan"]),
        (ASYNCIO, ["--sleep-seconds", "inf"]),
        (THREADED, ["--sleep-seconds", "3000000"]),  # past poll()'s C int of ms
        (ASYNCIO, ["--write-timeout", "86401"]),
        (THREADED, ["--keep-alive-timeout", "0"]),
        (THREADED, ["--keep-alive-timeout", "nan"]),
        (ASYNCIO, ["--keep-alive-timeout", "-5"]),
        (THREADED, ["--header-timeout", "0"]),
        (THREADED, ["--write-timeout", "soon"]),
        (THREADED, ["--shutdown-timeout", "0"]),
        (THREADED, ["--max-connections", "0"]),
        (ASYNCIO, ["--max-requests", "0"]),
        (THREADED, ["--log-level", "loud"]),
        (ASYNCIO, ["--loop", "fast"]),
        (THREADED, ["--loop", "asyncio"]),  # asyncio-only flag
        (ASYNCIO, ["--workers", "4"]),  # threaded-only flag
        (THREADED, ["--bogus"]),
        (THREADED, ["extra"]),
        (THREADED, ["--port"]),
        (THREADED, ["--host", ""]),
        (THREADED, ["--host", "bad host"]),
        (THREADED, ["--host", "h\u00e9llo"]),  # only ASCII host names resolve as given
        (THREADED, ["--host", "a..b"]),
        (THREADED, ["--fd", "2147483648"]),  # past a C int
        (ASYNCIO, ["--fd", "99999999999999999999"]),
    ],
)
def test_a_bad_value_exits_2_with_one_line(
    edition: Edition, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_options(edition, argv)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    module = "threaded" if edition is THREADED else "asyncio_server"
    assert err.startswith(f"python -m {module}: error: ")
    assert "Traceback" not in err


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser(THREADED).parse_args(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--host",
        "--port",
        "--sleep-seconds",
        "--log-level",
        "--access-log",
        "--no-access-log",
        "--keep-alive-timeout",
        "--header-timeout",
        "--max-connections",
        "--max-requests",
        "--shutdown-timeout",
        "--workers",
    ):
        assert flag in out


# -- the start-up line and the access log (common/runtime/logs.py) ------------------


@pytest.mark.parametrize(
    ("host", "port", "line"),
    [
        ("127.0.0.1", 7878, "Listening on http://127.0.0.1:7878 (threaded, 4 workers)"),
        ("::1", 40001, "Listening on http://[::1]:40001 (threaded, 4 workers)"),
    ],
)
def test_the_listening_line_has_the_real_port(host: str, port: int, line: str) -> None:
    options = parse_options(THREADED, ["--host", host, "--port", "0"])
    assert listening_message(options, port, "4 workers") == line


def test_the_access_log_line(caplog: pytest.LogCaptureFixture) -> None:
    exchange = Exchange(
        request_line="GET /sleep HTTP/1.1",
        reply=Reply(HTTPStatus.OK, b"hello"),
        keep_alive=True,
    )
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    AccessLog(enabled=True).record(
        "127.0.0.1:5555", exchange, 250, time.perf_counter_ns()
    )
    AccessLog(enabled=False).record(
        "127.0.0.1:5555", exchange, 250, time.perf_counter_ns()
    )
    [record] = caplog.records
    assert re.fullmatch(
        r'127\.0\.0\.1:5555 "GET /sleep HTTP/1\.1" 200 250 \d+\.\dms',
        record.getMessage(),
    )


# -- --max-requests: the budget (common/budget.py) ------------------------------------


def test_the_budget_says_when_the_last_response_is_sent() -> None:
    """The book's take(2): true exactly once, on the second response."""
    budget = RequestBudget(2)
    assert [budget.spend() for _ in range(4)] == [False, True, False, False]


def test_no_budget_never_runs_out() -> None:
    budget = RequestBudget(None)
    assert not any(budget.spend() for _ in range(1000))
