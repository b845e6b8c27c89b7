"""Response bytes: their exact shape, the Date header and its once-a-second cache."""

from __future__ import annotations

import re
import time
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus

import pytest

import common.response
from common.errors import ContentTooLarge, URITooLong
from common.response import SERVER_NAME, ConnectionHeader, Responder, http_date
from common.routes import Pages, Reply, error_reply

PAGES = Pages.load()
HELLO = Reply(HTTPStatus.OK, PAGES.hello)
# RFC 9110 §5.6.7: IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT
IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT"
)
# RFC 9110 §5.6.7's own example.
EXAMPLE_TIME = 784111777.0
EXAMPLE_DATE = "Sun, 06 Nov 1994 08:49:37 GMT"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_exact_bytes_of_the_hello_response() -> None:
    responder = Responder(clock=FakeClock(EXAMPLE_TIME))
    data = responder.render(HELLO, ConnectionHeader.NONE)
    assert len(PAGES.hello) == 178
    assert data == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: 178\r\n"
        b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        b"Server: hello\r\n"
        b"\r\n" + PAGES.hello
    )


@pytest.mark.parametrize(
    ("connection", "line"),
    [
        (ConnectionHeader.CLOSE, b"Connection: close\r\n"),
        (ConnectionHeader.KEEP_ALIVE, b"Connection: keep-alive\r\n"),
    ],
)
def test_the_connection_header_follows_server(
    connection: ConnectionHeader, line: bytes
) -> None:
    data = Responder(clock=FakeClock(EXAMPLE_TIME)).render(HELLO, connection)
    assert (
        b"Server: hello\r\n" + line + b"\r\n" + PAGES.hello
        == data[data.index(b"Server") :]
    )


def test_no_connection_header_for_none() -> None:
    data = Responder().render(HELLO, ConnectionHeader.NONE)
    assert b"Connection" not in data


def test_extra_headers_come_after_the_usual_ones() -> None:
    reply = Reply(
        HTTPStatus.SERVICE_UNAVAILABLE, b"busy", headers=(("Retry-After", "1"),)
    )
    data = Responder().render(reply, ConnectionHeader.CLOSE)
    assert data.endswith(b"Connection: close\r\nRetry-After: 1\r\n\r\nbusy")


def test_head_drops_only_the_body() -> None:
    """RFC 9110 §9.3.2: the same header fields as GET, no content."""
    responder = Responder(clock=FakeClock(EXAMPLE_TIME))
    full = responder.render(HELLO, ConnectionHeader.NONE)
    head = responder.render(HELLO, ConnectionHeader.NONE, head=True)
    assert full == head + PAGES.hello
    assert head.endswith(b"\r\n\r\n")
    assert b"Content-Length: 178\r\n" in head


def test_the_server_name_is_configurable() -> None:
    assert SERVER_NAME == "hello"
    data = Responder(server="other").render(HELLO, ConnectionHeader.NONE)
    assert b"\r\nServer: other\r\n" in data


@pytest.mark.parametrize("page", ["hello", "not_found"])
def test_content_length_is_the_body_length(page: str) -> None:
    body = getattr(PAGES, page)
    data = Responder().render(Reply(HTTPStatus.OK, body), ConnectionHeader.NONE)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
    assert rest == body


@pytest.mark.parametrize(
    ("error", "status_line"),
    [
        (ContentTooLarge("big"), b"HTTP/1.1 413 Content Too Large\r\n"),
        (URITooLong("long"), b"HTTP/1.1 414 URI Too Long\r\n"),
    ],
)
def test_reason_phrases_are_rfc_9110s_on_every_python(
    error: ContentTooLarge | URITooLong, status_line: bytes
) -> None:
    """RFC 9110 §15.5.14-15 renamed 413 and 414; Python < 3.13 has the old names."""
    assert (
        Responder()
        .render(error_reply(error), ConnectionHeader.CLOSE)
        .startswith(status_line)
    )


# -- Date (RFC 9110 §6.6.1) ---------------------------------------------------------


def test_date_is_an_imf_fixdate_of_the_clock() -> None:
    responder = Responder(clock=FakeClock(EXAMPLE_TIME + 0.99))
    assert responder.date() == EXAMPLE_DATE
    assert IMF_FIXDATE.fullmatch(responder.date())


def test_date_of_the_real_clock_is_now() -> None:
    date = Responder().date()
    assert IMF_FIXDATE.fullmatch(date)
    assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5


def test_date_is_formatted_only_when_the_second_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[float] = []

    def counting(timeval: float) -> str:
        calls.append(timeval)
        return http_date(timeval)

    monkeypatch.setattr(common.response, "http_date", counting)
    clock = FakeClock(100.0)
    responder = Responder(clock=clock)
    for now in (100.0, 100.3, 100.999):
        clock.now = now
        responder.date()
        responder.render(HELLO, ConnectionHeader.NONE)
    assert calls == [100]
    clock.now = 101.0
    assert responder.date() == "Thu, 01 Jan 1970 00:01:41 GMT"
    assert calls == [100, 101]


def test_a_cached_response_is_rebuilt_when_the_second_changes() -> None:
    clock = FakeClock(EXAMPLE_TIME)
    responder = Responder(clock=clock)
    first = responder.render(HELLO, ConnectionHeader.NONE)
    clock.now += 0.5
    assert responder.render(HELLO, ConnectionHeader.NONE) is first  # served from cache
    clock.now += 0.5
    later = responder.render(HELLO, ConnectionHeader.NONE)
    assert b"Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n" in later
    assert later == first.replace(b"08:49:37", b"08:49:38")


def test_the_cache_tells_head_and_connection_apart() -> None:
    responder = Responder(clock=FakeClock(EXAMPLE_TIME))
    get = responder.render(HELLO, ConnectionHeader.NONE)
    head = responder.render(HELLO, ConnectionHeader.NONE, head=True)
    close = responder.render(HELLO, ConnectionHeader.CLOSE)
    assert head != get
    assert b"Connection: close" in close
    assert b"Connection" not in responder.render(HELLO, ConnectionHeader.NONE)
    assert responder.render(HELLO, ConnectionHeader.NONE, head=True) == head


def test_many_distinct_replies_are_all_rendered_correctly() -> None:
    """Past the cache's size every reply must still be right, just not cached."""
    responder = Responder(clock=FakeClock(EXAMPLE_TIME))
    for n in range(200):
        body = b"x" * n
        data = responder.render(Reply(HTTPStatus.OK, body), ConnectionHeader.NONE)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"\r\nContent-Length: %d\r\n" % n in head
        assert rest == body


@pytest.mark.parametrize(
    "instant", [0, 784111777, 951782400, 1709164800, 4102444799, 2**33]
)
def test_http_date_is_imf_fixdate(instant: int) -> None:
    """RFC 9110 §5.6.7, as the stdlib's email formatter writes it."""
    assert http_date(instant) == formatdate(instant, usegmt=True)
