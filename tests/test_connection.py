"""HttpConnection and Exchange: bytes in, the exact responses a client reads.

Everything here goes through ``HttpConnection`` as a shell drives it, and the
assertions are on the rendered bytes, parsed the way a client would.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from common.connection import Exchange, HttpConnection
from common.errors import (
    BadRequest,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
)
from common.parser import HTTPVersion
from common.response import Responder
from common.routes import Pages, Router

HOST = b"Host: localhost\r\n"
SLEEP = 2.5
PAGES = Pages.load()


@dataclass(frozen=True)
class Parsed:
    status_line: str
    headers: dict[str, str]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ")[1])


def parse_response(raw: bytes, *, head: bool = False) -> Parsed:
    """One response, read as a client reads it; the bytes must be exactly one."""
    head_bytes, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, raw
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(": ")
        assert colon, line
        assert name.lower() not in headers, f"duplicate {name}"
        headers[name.lower()] = value
    if head:
        assert body == b""
    else:
        assert len(body) == int(headers["content-length"])
    return Parsed(status_line, headers, body)


def connection() -> HttpConnection:
    return HttpConnection(Router(PAGES, sleep_seconds=SLEEP))


def exchanges(
    data: bytes, *, eof: bool = False
) -> tuple[HttpConnection, list[Exchange]]:
    conn = connection()
    conn.receive(data)
    if eof:
        conn.receive(b"")
    found = []
    while (exchange := conn.next_exchange()) is not None:
        found.append(exchange)
    return conn, found


def only(data: bytes) -> Exchange:
    _, found = exchanges(data)
    assert len(found) == 1, found
    return found[0]


def respond(data: bytes, *, closing: bool = False) -> Parsed:
    exchange = only(data)
    return parse_response(
        exchange.render(Responder(), closing=closing), head=exchange.head
    )


def request(
    method: bytes = b"GET",
    target: bytes = b"/",
    extra: bytes = b"",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    return method + b" " + target + b" " + version + b"\r\n" + HOST + extra + b"\r\n"


# -- routes ----------------------------------------------------------------------


def test_get_root_is_the_hello_page() -> None:
    response = respond(request())
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.body == PAGES.hello
    assert b"Hi from Python" in response.body
    assert response.headers["content-length"] == str(len(PAGES.hello))
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_get_root_has_no_delay() -> None:
    assert only(request()).reply.delay == 0


@pytest.mark.parametrize("target", [b"/sleep", b"/sleep?x=1", b"/%73leep"])
def test_get_sleep_is_the_hello_page_after_the_configured_delay(target: bytes) -> None:
    exchange = only(request(target=target))
    assert exchange.reply.delay == SLEEP
    assert parse_response(exchange.render(Responder())).body == PAGES.hello


@pytest.mark.parametrize("target", [b"/nope", b"/sleep/", b"/index.html", b"//"])
def test_anything_else_is_404_with_the_oops_page(target: bytes) -> None:
    """RFC 9110 §15.5.5."""
    response = respond(request(target=target))
    assert response.status_line == "HTTP/1.1 404 Not Found"
    assert response.body == PAGES.not_found
    assert b"Oops!" in response.body


@pytest.mark.parametrize("target", [b"/", b"/sleep", b"/nope"])
def test_head_has_the_same_headers_and_no_body(target: bytes) -> None:
    """RFC 9110 §9.3.2: HEAD is GET without the content, same Content-Length."""
    get = respond(request(b"GET", target))
    head = respond(request(b"HEAD", target))
    assert head.status_line == get.status_line
    assert head.headers == get.headers
    assert head.body == b""
    assert head.headers["content-length"] == str(len(get.body))


def test_head_sleep_waits_too() -> None:
    assert only(request(b"HEAD", b"/sleep")).reply.delay == SLEEP


@pytest.mark.parametrize(
    ("method", "target"),
    [(b"POST", b"/"), (b"PUT", b"/"), (b"DELETE", b"/sleep"), (b"PATCH", b"/")],
)
def test_a_known_method_a_route_does_not_allow_is_405_with_allow(
    method: bytes, target: bytes
) -> None:
    """RFC 9110 §15.5.6: 405 MUST carry Allow with the methods the target takes."""
    response = respond(request(method, target))
    assert response.status_line == "HTTP/1.1 405 Method Not Allowed"
    assert response.headers["allow"] == "GET, HEAD"
    assert b"405 Method Not Allowed" in response.body


def test_405_keeps_the_connection_open() -> None:
    """A 405 is not a framing error: the body is discarded, the next request parses."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n\r\nabc" + request()
    conn, found = exchanges(data)
    assert [e.reply.status for e in found] == [405, 200]
    assert not conn.closed


def test_post_to_a_missing_page_is_404() -> None:
    assert respond(request(b"POST", b"/nope")).status == 404


def test_options_asterisk_is_200_with_allow() -> None:
    """RFC 9110 §9.3.7: OPTIONS * describes the server's capabilities."""
    response = respond(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n")
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["content-length"] == "0"


def test_absolute_form_is_routed_by_its_path() -> None:
    """RFC 9112 §3.2.2: a server MUST accept the absolute-form."""
    assert respond(request(target=b"http://127.0.0.1:7878/")).body == PAGES.hello
    assert respond(request(target=b"http://127.0.0.1:7878/sleep")).status == 200


# -- the Connection header (RFC 9112 §9.3, §9.6) ----------------------------------


def test_http11_persistent_sends_no_connection_header() -> None:
    response = respond(request())
    assert "connection" not in response.headers


def test_http11_close_is_answered_with_close() -> None:
    response = respond(request(extra=b"Connection: close\r\n"))
    assert response.headers["connection"] == "close"


def test_http10_keep_alive_is_announced() -> None:
    """HTTP/1.0 persistence must be explicit both ways (RFC 9112 §C.2.2)."""
    response = respond(
        request(extra=b"Connection: keep-alive\r\n", version=b"HTTP/1.0")
    )
    assert response.headers["connection"] == "keep-alive"


def test_http10_default_closes() -> None:
    exchange = only(b"GET / HTTP/1.0\r\n\r\n")
    assert exchange.version is HTTPVersion.HTTP_1_0
    assert not exchange.keep_alive
    assert parse_response(exchange.render(Responder())).headers["connection"] == "close"


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_closing_forces_connection_close(version: bytes) -> None:
    """Shutdown or --max-requests: the last response says close."""
    extra = b"Connection: keep-alive\r\n"
    response = respond(request(extra=extra, version=version), closing=True)
    assert response.headers["connection"] == "close"


def test_a_close_request_ends_the_connection_and_later_requests_are_dropped() -> None:
    data = request(target=b"/a") + request(target=b"/b", extra=b"Connection: close\r\n")
    conn, found = exchanges(data + request(target=b"/c"))
    assert [e.request_line for e in found] == ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]
    assert [e.keep_alive for e in found] == [True, False]
    assert conn.closed
    conn.receive(request())
    assert conn.next_exchange() is None


def test_pipelined_requests_are_answered_in_order() -> None:
    """RFC 9112 §9.3.2."""
    data = request(target=b"/") + request(b"HEAD", b"/nope") + request(target=b"/sleep")
    conn, found = exchanges(data)
    assert [(e.request_line, e.reply.status, e.head) for e in found] == [
        ("GET / HTTP/1.1", 200, False),
        ("HEAD /nope HTTP/1.1", 404, True),
        ("GET /sleep HTTP/1.1", 200, False),
    ]
    assert not conn.closed


# -- Expect: 100-continue (RFC 9110 §10.1.1) ------------------------------------


def test_expect_continue_with_an_unsent_body_closes_after_the_reply() -> None:
    """We answer without reading the body, so the body must not be read as a request."""
    head = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    conn, found = exchanges(head)
    assert len(found) == 1
    assert not found[0].keep_alive
    assert conn.closed
    assert parse_response(found[0].render(Responder())).headers["connection"] == "close"


def test_expect_continue_with_the_body_already_sent_stays_open() -> None:
    head = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    conn, found = exchanges(head + b"hello" + request())
    assert [e.reply.status for e in found] == [405, 200]
    assert found[0].keep_alive
    assert not conn.closed


# -- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status_line", "logged_line"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request", "GET / HTTP/1.1"),
        (
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
            "HTTP/1.1 414 URI Too Long",
            "-",  # the line never arrived whole
        ),
        (
            b"GET / HTTP/1.1\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(101))
            + b"\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
            "GET / HTTP/1.1",
        ),
        (
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 99999999\r\n\r\n",
            "HTTP/1.1 413 Content Too Large",
            "POST / HTTP/1.1",
        ),
        (
            b"FOO / HTTP/1.1\r\n" + HOST + b"\r\n",
            "HTTP/1.1 501 Not Implemented",
            "-",  # the line itself is what failed
        ),
        (
            b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 501 Not Implemented",
            "POST / HTTP/1.1",
        ),
        (
            b"GET / HTTP/2.0\r\n\r\n",
            "HTTP/1.1 505 HTTP Version Not Supported",
            "-",
        ),
    ],
)
def test_a_protocol_error_is_answered_with_its_status_and_closes(
    data: bytes, status_line: str, logged_line: str
) -> None:
    conn, found = exchanges(data + request())
    assert len(found) == 1
    exchange = found[0]
    assert exchange.request_line == logged_line
    assert not exchange.keep_alive
    assert conn.closed
    response = parse_response(exchange.render(Responder()))
    assert response.status_line == status_line
    assert response.headers["connection"] == "close"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    title = status_line.removeprefix("HTTP/1.1 ")
    assert f"<title>{title}</title>".encode() in response.body
    assert f"<h1>{title}</h1>".encode() in response.body


@pytest.mark.parametrize(
    "data",
    [
        b"HEAD / HTTP/1.1\r\n\r\n",  # no Host
        b"HEAD / HTTP/1.1\r\n" + HOST + b"Bad Name: x\r\n\r\n",
        b"HEAD / HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n",
    ],
)
def test_an_error_answering_head_has_no_body(data: bytes) -> None:
    """RFC 9110 §9.3.2: no content in a response to HEAD, errors included."""
    exchange = only(data)
    raw = exchange.render(Responder())
    response = parse_response(raw, head=True)
    assert response.status_line == "HTTP/1.1 400 Bad Request"
    assert int(response.headers["content-length"]) > 0
    assert raw.endswith(b"\r\n\r\n")


def test_an_error_for_a_method_that_only_begins_like_head_has_a_body() -> None:
    exchange = only(b"HEADER /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert exchange.reply.status == 414
    assert not exchange.head
    assert b"<h1>414 URI Too Long</h1>" in exchange.render(Responder())


def test_the_error_page_says_what_was_wrong_html_escaped() -> None:
    """A method name may hold & and ' (both are tchars): they must be escaped."""
    exchange = only(b"X&Y'Z / HTTP/1.1\r\n" + HOST + b"\r\n")
    body = parse_response(exchange.render(Responder())).body.decode()
    assert "<p>method X&amp;Y&#x27;Z is not implemented</p>" in body


def test_fail_escapes_any_detail() -> None:
    conn = connection()
    exchange = conn.fail(BadRequest("<script>alert(1)</script>"))
    body = exchange.render(Responder()).decode()
    assert "<script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert conn.closed


def test_503_has_retry_after() -> None:
    """RFC 9110 §10.2.3: Retry-After tells an overloaded server's client when."""
    conn = connection()
    response = parse_response(conn.fail(ServiceUnavailable()).render(Responder()))
    assert response.status_line == "HTTP/1.1 503 Service Unavailable"
    assert response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    assert conn.closed
    assert conn.next_exchange() is None


def test_408_for_a_header_timeout() -> None:
    conn = connection()
    conn.receive(b"GET / HTT")
    assert conn.mid_request
    response = parse_response(conn.fail(RequestTimeout()).render(Responder()))
    assert response.status_line == "HTTP/1.1 408 Request Timeout"
    assert "retry-after" not in response.headers
    assert response.headers["connection"] == "close"


def test_an_error_after_good_requests_answers_them_first() -> None:
    conn, found = exchanges(request(target=b"/a") + b"BAD\r\n\r\n" + request())
    assert [e.reply.status for e in found] == [404, 400]
    assert found[0].keep_alive
    assert conn.closed


def test_a_bad_chunk_after_an_answered_head_ends_the_connection_silently() -> None:
    """One response per request: the 405 went out; the bad body gets no 400."""
    data = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"
    conn, found = exchanges(data)
    assert [e.reply.status for e in found] == [405]
    assert conn.closed


def test_a_bad_chunk_arriving_later_ends_the_connection_silently() -> None:
    conn = connection()
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    conn.receive(head + b"5\r\nhel")
    first = conn.next_exchange()
    assert first is not None
    assert first.reply.status == 405
    assert conn.next_exchange() is None
    assert not conn.closed
    conn.receive(b"lo\r\nzz\r\n0\r\n\r\n" + request())
    assert conn.next_exchange() is None
    assert conn.closed


@pytest.mark.parametrize("split", [0, 3], ids=["body-whole", "body-later"])
def test_a_bad_head_after_a_good_body_still_gets_its_400(split: int) -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
    conn = connection()
    conn.receive(head + body[:split] if split else head + body + b"BAD\r\n\r\n")
    found = []
    while (exchange := conn.next_exchange()) is not None:
        found.append(exchange)
    if split:
        conn.receive(body[split:] + b"BAD\r\n\r\n")
        while (exchange := conn.next_exchange()) is not None:
            found.append(exchange)
    assert [e.reply.status for e in found] == [405, 400]
    assert conn.closed


# -- end of input and deadlines ----------------------------------------------------


def test_eof_mid_head_is_400() -> None:
    conn, found = exchanges(b"GET / HTTP/1.1\r\nHost", eof=True)
    assert [e.reply.status for e in found] == [400]
    assert conn.closed


def test_eof_while_idle_is_no_exchange() -> None:
    _, found = exchanges(b"\r\n", eof=True)
    assert found == []


def test_mid_request_tells_which_deadline_applies() -> None:
    conn = connection()
    assert not conn.mid_request
    conn.receive(b"GET / HTTP/1.1\r\n")
    assert conn.next_exchange() is None
    assert conn.mid_request
    conn.receive(HOST + b"\r\n")
    assert conn.next_exchange() is not None
    assert not conn.mid_request


@pytest.mark.parametrize(
    ("data", "logged"),
    [
        (b"GET /a HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1"),  # no Host: 400
        (
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 9999999\r\n\r\n",
            "POST / HTTP/1.1",  # 413
        ),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "GET / HTTP/1.1"),  # bad field
        (b'GET /"x HTTP/1.1\r\n\r\n', "-"),  # a quote would break the log line
        (b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n", "-"),  # no request line parsed
    ],
)
def test_a_failed_request_is_logged_with_its_line_when_it_came(
    data: bytes, logged: str
) -> None:
    assert only(data).request_line == logged


def test_exchange_failure_is_a_closing_exchange() -> None:
    error: ProtocolError = BadRequest("x")
    exchange = Exchange.failure(error)
    assert exchange.request_line == "-"
    assert exchange.reply.status == 400
    assert not exchange.keep_alive
    assert not exchange.head


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"HEAD /" + b"a" * 8179 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
        (b"HEAD /" + b"a" * 9000, 414),  # refused before the line ends
        (b"HEAD / HTTP/1.1\r\n" + HOST + b"X: " + b"a" * 65530 + b"\r\n\r\n", 431),
        (b"HEAD / HTTP/1.1\n" + HOST + b"\n", 400),  # bare LF
        (b"HEAD / HTTP/2.0\r\n" + HOST + b"\r\n", 505),
    ],
    ids=["414", "414-unfinished", "431", "bare-lf", "505"],
)
def test_an_error_answering_a_head_request_has_no_body(
    data: bytes, status: int
) -> None:
    """RFC 9110 §9.3.2: no content in a response to HEAD, error pages
    included, even when what is wrong is the request line itself."""
    conn = connection()
    conn.receive(data)
    exchange = conn.next_exchange()
    assert exchange is not None
    response = parse_response(exchange.render(Responder()), head=True)
    assert response.status == status
    assert int(response.headers["content-length"]) > 0  # GET's length, as HEAD's


def test_a_head_request_that_times_out_gets_a_bodiless_408() -> None:
    conn = connection()
    conn.receive(b"\r\nHEAD / HTTP/1.1\r\n" + HOST)
    assert conn.next_exchange() is None
    timeout = conn.time_out()
    assert timeout is not None
    response = parse_response(timeout.render(Responder()), head=True)
    assert response.status == 408
    assert conn.closed


def test_a_get_pipelined_behind_an_error_is_not_taken_for_a_head() -> None:
    conn = connection()
    conn.receive(b"GET / HTTP/1.1\n" + HOST + b"\nHEAD / HTTP/1.1\r\n" + HOST + b"\r\n")
    exchange = conn.next_exchange()
    assert exchange is not None
    assert parse_response(exchange.render(Responder())).status == 400  # with its page


@pytest.mark.parametrize(
    "data",
    [
        b"",  # nothing at all
        b"\r\n\r\n",  # empty lines only
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 9\r\n\r\nabc",  # a body
    ],
    ids=["idle", "empty-lines", "body-after-answer"],
)
def test_a_timeout_with_no_head_begun_answers_nothing(data: bytes) -> None:
    """One response per request: only a head that began gets a 408."""
    conn = connection()
    conn.receive(data)
    while conn.next_exchange() is not None:
        pass
    assert conn.time_out() is None
    assert conn.closed
