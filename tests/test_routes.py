"""The book's routes as data, its two pages, and the error page."""

from __future__ import annotations

from html.parser import HTMLParser
from http import HTTPStatus

import pytest

from common.errors import (
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    MethodNotImplemented,
    ProtocolError,
    RequestTimeout,
    ServiceUnavailable,
    TransferCodingNotImplemented,
    URITooLong,
    VersionNotSupported,
)
from common.parser import HTTPVersion, Request
from common.routes import (
    ALLOW_HEADER,
    Pages,
    Reply,
    Router,
    error_page,
    error_reply,
    reason,
)

PAGES = Pages.load()


class Outline(HTMLParser):
    """The text of each element of interest: title, h1, p."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, list[str]] = {}
        self._open: str | None = None
        self.lang: str | None = None
        self.charset: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag == "meta":
            self.charset = dict(attrs).get("charset")
        if tag in ("title", "h1", "p"):
            self._open = tag
            self.text.setdefault(tag, []).append("")

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.text[self._open][-1] += data


def outline(page: bytes) -> Outline:
    parser = Outline()
    parser.feed(page.decode("utf-8"))
    parser.close()
    return parser


def test_hello_page_follows_the_book() -> None:
    """The book's hello.html (Figure 21-1), with Python in place of Rust."""
    page = outline(PAGES.hello)
    assert page.text == {"title": ["Hello!"], "h1": ["Hello!"], "p": ["Hi from Python"]}
    assert page.lang == "en"
    assert page.charset == "utf-8"
    assert PAGES.hello.startswith(b"<!DOCTYPE html>")


def test_404_page_follows_the_book() -> None:
    page = outline(PAGES.not_found)
    assert page.text == {
        "title": ["Hello!"],
        "h1": ["Oops!"],
        "p": ["Sorry, I don't know what you're asking for."],
    }
    assert page.charset == "utf-8"


def test_pages_load_the_same_bytes_each_time() -> None:
    assert Pages.load() == PAGES


def make_request(method: str, path: str) -> Request:
    return Request(
        method=method,
        target=path,
        path=path,
        version=HTTPVersion.HTTP_1_1,
        headers=(("host", "x"),),
        keep_alive=True,
    )


ROUTER = Router(PAGES, sleep_seconds=5.0)


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "delay"),
    [
        ("GET", "/", 200, PAGES.hello, 0.0),
        ("HEAD", "/", 200, PAGES.hello, 0.0),
        ("GET", "/sleep", 200, PAGES.hello, 5.0),
        ("HEAD", "/sleep", 200, PAGES.hello, 5.0),
        ("GET", "/nope", 404, PAGES.not_found, 0.0),
        ("HEAD", "/nope", 404, PAGES.not_found, 0.0),
        ("POST", "/nope", 404, PAGES.not_found, 0.0),
        ("GET", "", 404, PAGES.not_found, 0.0),
    ],
)
def test_routes(method: str, path: str, status: int, body: bytes, delay: float) -> None:
    reply = ROUTER.resolve(make_request(method, path))
    assert (reply.status, reply.body, reply.delay) == (status, body, delay)
    assert reply.headers == ()


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
)
@pytest.mark.parametrize("path", ["/", "/sleep"])
def test_other_methods_on_a_route_are_405_with_allow(method: str, path: str) -> None:
    """RFC 9110 §15.5.6: 405 with Allow listing what the resource supports."""
    reply = ROUTER.resolve(make_request(method, path))
    assert reply.status == HTTPStatus.METHOD_NOT_ALLOWED
    assert reply.headers == (("Allow", "GET, HEAD"),)
    assert reply.delay == 0
    assert b"405 Method Not Allowed" in reply.body


def test_options_asterisk_is_200_with_allow() -> None:
    reply = ROUTER.resolve(make_request("OPTIONS", "*"))
    assert reply == Reply(HTTPStatus.OK, b"", headers=(ALLOW_HEADER,))
    assert ALLOW_HEADER == ("Allow", "GET, HEAD")


def test_the_sleep_delay_is_the_configured_one() -> None:
    assert Router(PAGES, 0.25).resolve(make_request("GET", "/sleep")).delay == 0.25


def test_fixed_replies_are_built_once() -> None:
    """The response cache keys on them: the same request gives the same object."""
    first = ROUTER.resolve(make_request("GET", "/"))
    assert ROUTER.resolve(make_request("GET", "/")) is first
    assert ROUTER.resolve(make_request("GET", "/x")) is ROUTER.resolve(
        make_request("GET", "/y")
    )


# -- the error page --------------------------------------------------------------


def test_error_page_says_what_was_wrong_escaped() -> None:
    page = outline(error_page(HTTPStatus.BAD_REQUEST, 'bad "<thing>" & more'))
    assert page.text == {
        "title": ["400 Bad Request"],
        "h1": ["400 Bad Request"],
        "p": ['bad "<thing>" & more'],
    }
    raw = error_page(HTTPStatus.BAD_REQUEST, "<b>")
    assert b"<b>" not in raw
    assert b"&lt;b&gt;" in raw


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadRequest("x"), 400),
        (RequestTimeout(), 408),
        (ContentTooLarge("x"), 413),
        (URITooLong("x"), 414),
        (HeaderFieldsTooLarge("x"), 431),
        (MethodNotImplemented("x"), 501),
        (TransferCodingNotImplemented("x"), 501),
        (ServiceUnavailable(), 503),
        (VersionNotSupported("x"), 505),
    ],
)
def test_each_error_carries_its_status_into_its_reply(
    error: ProtocolError, status: int
) -> None:
    reply = error_reply(error)
    assert reply.status == status
    assert isinstance(error, ProtocolError)
    assert error.detail in outline(reply.body).text["p"][0]
    assert reply.delay == 0


def test_default_details_for_the_shells_own_errors() -> None:
    assert "in time" in RequestTimeout().detail
    assert "busy" in ServiceUnavailable().detail
    assert error_reply(ServiceUnavailable()).headers == (("Retry-After", "1"),)
    assert error_reply(RequestTimeout()).headers == ()


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (HTTPStatus.OK, "OK"),
        (HTTPStatus.NOT_FOUND, "Not Found"),
        (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Content Too Large"),
        (HTTPStatus.REQUEST_URI_TOO_LONG, "URI Too Long"),
        (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request Header Fields Too Large"),
        (HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP Version Not Supported"),
    ],
)
def test_reason_phrases_follow_rfc_9110(status: HTTPStatus, phrase: str) -> None:
    """RFC 9110 §15: the registry's current names, whatever the Python."""
    assert reason(status) == phrase
