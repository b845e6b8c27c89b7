"""The per-server cache of parsed request heads must be invisible.

A server hands every connection the same :class:`ExchangeCache`; whatever
bytes arrive, the exchanges (and the rendered responses) must be exactly what
an uncached connection would produce, and only bodiless heads that parsed
without error may be remembered.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest

from common.connection import Exchange, ExchangeCache, HttpConnection
from common.errors import ProtocolError
from common.limits import Limits
from common.parser import HeadCache, Request, RequestParser
from common.response import Responder
from common.routes import Pages, Router

ROUTER = Router(Pages.load(), sleep_seconds=1.0)
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

STREAMS = [
    GET * 3,
    GET + b"GET /sleep HTTP/1.1\r\nHost: a\r\n\r\n" + GET,
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + GET,
    b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n" * 2,
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2,
    GET + b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nGET " + GET,
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n" + GET,
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n" + GET,
    b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n" + GET,  # no Host: 400, and nothing after it
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"\r\n\r\n" + GET + b"\n" + GET,
    b"GET / HTTP/1.1\nHost: a\n\n" + GET,
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" * 2,
    b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
]


def exchanges(data: bytes, cache: ExchangeCache | None) -> list[Exchange]:
    conn = HttpConnection(ROUTER, Limits(), cache)
    conn.receive(data)
    conn.receive(b"")
    out: list[Exchange] = []
    while (exchange := conn.next_exchange()) is not None:
        out.append(exchange)
    return out


@pytest.mark.parametrize("data", STREAMS)
def test_cached_exchanges_equal_uncached(data: bytes) -> None:
    cache = ExchangeCache(ROUTER, Limits())
    expected = exchanges(data, None)
    responder = Responder(clock=lambda: 1_700_000_000.0)
    for _ in range(3):  # cold, then warm, then warm again
        got = exchanges(data, cache)
        assert got == expected
        assert [e.render(responder) for e in got] == [
            e.render(responder) for e in expected
        ]


def pieces_at_request_ends(data: bytes) -> list[bytes]:
    """``data`` cut after every blank line: one whole head per read, as
    clients usually send them (what the parser's fast path recognises)."""
    cuts = [m.end() for m in re.finditer(rb"\n\r?\n", data)]
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if a < b]


def exchanges_fed(
    pieces: list[bytes], cache: ExchangeCache | None, drain_every: int
) -> list[Exchange]:
    """Feed ``pieces`` one by one, taking exchanges after every ``drain_every``."""
    conn = HttpConnection(ROUTER, Limits(), cache)
    out: list[Exchange] = []
    for index, piece in enumerate(pieces, 1):
        conn.receive(piece)
        if index % drain_every == 0:
            while (exchange := conn.next_exchange()) is not None:
                out.append(exchange)
    conn.receive(b"")
    while (exchange := conn.next_exchange()) is not None:
        out.append(exchange)
    return out


@pytest.mark.parametrize("data", STREAMS)
@pytest.mark.parametrize("drain_every", [1, 2, 3])
def test_whole_heads_fed_one_by_one_equal_uncached(
    data: bytes, drain_every: int
) -> None:
    cache = ExchangeCache(ROUTER, Limits())
    pieces = pieces_at_request_ends(data)
    expected = exchanges_fed(pieces, None, drain_every)
    for _ in range(3):  # cold, then warm: whole reads are recognised in feed()
        assert exchanges_fed(pieces, cache, drain_every) == expected


def test_random_cuts_through_a_warm_cache_equal_uncached() -> None:
    rng = random.Random(9112)
    cache = ExchangeCache(ROUTER, Limits())
    for data in STREAMS:
        exchanges_fed(pieces_at_request_ends(data), cache, 1)  # warm it
    for _ in range(300):
        data = b"".join(rng.choices(STREAMS, k=3))
        cuts = sorted(rng.sample(range(1, len(data)), k=rng.randint(0, 6)))
        edges = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(edges)]
        drain_every = rng.randint(1, 3)
        assert exchanges_fed(pieces, cache, drain_every) == exchanges_fed(
            pieces, None, drain_every
        )


def test_a_whole_head_fed_is_handed_out_before_what_follows() -> None:
    cache = HeadCache(Limits())
    warm = RequestParser(Limits(), cache)
    warm.feed(GET)
    assert warm.next_request() is not None

    parser = RequestParser(Limits(), cache)
    parser.feed(GET)  # recognised whole
    assert not parser.consumed  # received, not yet handed out
    parser.feed(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n")
    first, second = parser.next_request(), parser.next_request()
    assert first is not None
    assert second is not None
    assert (first.path, second.path) == ("/", "/missing")
    assert parser.next_request() is None
    assert parser.consumed


def test_all_streams_through_one_cache() -> None:
    cache = ExchangeCache(ROUTER, Limits(), size=4)  # small: it is emptied often
    for _ in range(3):
        for data in STREAMS:
            assert exchanges(data, cache) == exchanges(data, None)
    assert len(cache.heads) <= 4


def test_identical_heads_share_one_request() -> None:
    cache = HeadCache(Limits())
    first = RequestParser(Limits(), cache)
    second = RequestParser(Limits(), cache)
    first.feed(GET)
    second.feed(GET)
    assert first.next_request() is second.next_request()


def test_heads_with_a_body_are_not_remembered() -> None:
    cache = HeadCache(Limits())
    head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"
    parser = RequestParser(Limits(), cache)
    parser.feed(head + b"ok" + head + b"ok")
    one, two = parser.next_request(), parser.next_request()
    assert one is not None
    assert two is not None
    assert one is not two
    assert one == two
    assert parser.next_request() is None
    assert not parser.body_pending
    assert len(cache) == 0


def test_failed_heads_are_not_remembered() -> None:
    cache = HeadCache(Limits())
    for _ in range(2):
        parser = RequestParser(Limits(), cache)
        parser.feed(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
        with pytest.raises(ProtocolError):
            parser.next_request()
    assert len(cache) == 0


def test_a_cache_of_other_limits_is_not_used() -> None:
    cache = HeadCache(Limits())
    warm = RequestParser(Limits(), cache)
    warm.feed(GET)
    assert warm.next_request() is not None
    strict = RequestParser(Limits(max_header_count=0), cache)
    strict.feed(GET)
    with pytest.raises(ProtocolError):
        strict.next_request()


def test_a_cache_of_another_router_is_not_used() -> None:
    cache = ExchangeCache(ROUTER, Limits())
    exchanges(GET, cache)
    other = Router(Pages(hello=b"other", not_found=b"none"), sleep_seconds=0.0)
    conn = HttpConnection(other, Limits(), cache)
    conn.receive(GET)
    exchange = conn.next_exchange()
    assert exchange is not None
    assert exchange.reply.body == b"other"


def test_the_cache_is_bounded() -> None:
    cache = HeadCache(Limits(), size=8)
    for index in range(100):
        parser = RequestParser(Limits(), cache)
        parser.feed(f"GET /{index} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        request = parser.next_request()
        assert isinstance(request, Request)
        assert request.path == f"/{index}"
        assert len(cache) <= 8
