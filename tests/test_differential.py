"""Our request parser agrees with h11's but for the deliberate differences.

The generator, both readings and the list of differences live in
``fuzz/differential.py``, whose long run counts a million streams.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("h11")

from fuzz.differential import DELIBERATE, KEEP_ALIVE_1_0, STREAMS, outcome

EXAMPLES = int(os.environ.get("DIFFERENTIAL_EXAMPLES", "400"))
"""400 in CI (about a second)."""

CHUNKED = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

EXAMPLE_OF = {
    "bare LF": b"GET / HTTP/1.1\nHost: h\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n",
    "Content-Length with Transfer-Encoding": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "HTTP/1.0 with Transfer-Encoding": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "a list-valued Content-Length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\nx"
    ),
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    "chunk extension outside the grammar": CHUNKED + b"1;\r\nx\r\n0\r\n\r\n",
    "BWS in a chunk extension": CHUNKED + b"1 ; a = b\r\nx\r\n0\r\n\r\n",
    KEEP_ALIVE_1_0: (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /a HTTP/1.0\r\n\r\n"
    ),
}


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(STREAMS)
def test_our_parser_agrees_with_h11(data: bytes) -> None:
    outcome(data)  # raises Disagreement unless they agree or differ on purpose


def test_every_deliberate_difference_is_listed_with_an_example() -> None:
    assert set(EXAMPLE_OF) == {d.name for d in DELIBERATE} | {KEEP_ALIVE_1_0}


@pytest.mark.parametrize("name", EXAMPLE_OF)
def test_each_deliberate_difference_is_real(name: str) -> None:
    """The parsers really differ on its example, so no entry is dead weight."""
    assert outcome(EXAMPLE_OF[name]) == name


@pytest.mark.parametrize(
    ("data", "agreement"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "agreed, accepted"),
        (CHUNKED + b"1;a=b\r\nx\r\n0\r\n\r\n", "agreed, accepted"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: 1\r\n\r\n", "agreed, refused"),
    ],
)
def test_plain_cases_agree(data: bytes, agreement: str) -> None:
    assert outcome(data) == agreement
