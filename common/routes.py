"""The book's three routes, as data: what to answer, never how to wait.

``resolve`` returns a :class:`Reply` — a status, a body and a delay. The core
never sleeps: the threaded shell spends the delay with ``time.sleep`` (holding
its worker, which is the book's point), the asyncio shell with ``await
asyncio.sleep``. That one line is the contrast this project exists to show.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources

from common.errors import ProtocolError
from common.parser import Request

ALLOWED_METHODS = ("GET", "HEAD")
ALLOW_HEADER = ("Allow", ", ".join(ALLOWED_METHODS))

# RFC 9110 §15 renamed these; Python's HTTPStatus has the new names only from
# 3.13 on, so without this table the status line would depend on the
# interpreter ("413 Request Entity Too Large" on 3.11 and 3.12).
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason(status: HTTPStatus) -> str:
    """The reason phrase RFC 9110 §15 gives ``status``, on every Python."""
    return _RFC9110_PHRASES.get(status.value, status.phrase)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer: status, body, extra headers, and how long to wait first."""

    status: HTTPStatus
    body: bytes
    delay: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Pages:
    """The book's two pages, read once from package data."""

    hello: bytes
    not_found: bytes

    @classmethod
    def load(cls) -> Pages:
        folder = resources.files("common") / "pages"
        return cls(
            hello=(folder / "hello.html").read_bytes(),
            not_found=(folder / "404.html").read_bytes(),
        )


def error_page(status: HTTPStatus, detail: str) -> bytes:
    """A short HTML page saying what was wrong, in the book pages' layout."""
    title = f"{status.value} {reason(status)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "  <head>\n"
        '    <meta charset="utf-8">\n'
        f"    <title>{title}</title>\n"
        "  </head>\n"
        "  <body>\n"
        f"    <h1>{title}</h1>\n"
        f"    <p>{html.escape(detail)}</p>\n"
        "  </body>\n"
        "</html>\n"
    ).encode()


def error_reply(error: ProtocolError) -> Reply:
    """The reply for any protocol error: its status, its page, its headers."""
    return Reply(
        status=error.status,
        body=error_page(error.status, error.detail),
        headers=error.extra_headers(),
    )


class Router:
    """Maps a request to a reply: ``/`` and ``/sleep`` say hello, the rest 404.

    Replies for the fixed routes are built once, so a request costs a dict
    look-up and the response cache can key on them.
    """

    def __init__(self, pages: Pages, sleep_seconds: float) -> None:
        hello = Reply(HTTPStatus.OK, pages.hello)
        self._routes = {
            "/": hello,
            "/sleep": Reply(HTTPStatus.OK, pages.hello, delay=sleep_seconds),
        }
        self._not_found = Reply(HTTPStatus.NOT_FOUND, pages.not_found)
        self._options = Reply(HTTPStatus.OK, b"", headers=(ALLOW_HEADER,))
        detail = "This server answers only GET and HEAD."
        self._not_allowed = Reply(
            HTTPStatus.METHOD_NOT_ALLOWED,
            error_page(HTTPStatus.METHOD_NOT_ALLOWED, detail),
            headers=(ALLOW_HEADER,),
        )

    def resolve(self, request: Request) -> Reply:
        if request.path == "*":  # OPTIONS * asks about the server itself
            return self._options
        reply = self._routes.get(request.path)
        if reply is None:
            return self._not_found
        if request.method not in ALLOWED_METHODS:
            return self._not_allowed
        return reply
