"""The conformance table: raw requests, the RFC rule each checks, and the answer.

Used twice: ``test_conformance`` checks each edition gives the expected
statuses (and still serves afterwards); ``test_parity`` checks both editions
send the very same bytes, ``Date`` aside.

Each case's bytes are sent on a fresh connection, followed by a half-close, so
the server answers what it can and then closes: the responses are everything
it sent.
"""

from __future__ import annotations

from dataclasses import dataclass

H = b"Host: localhost\r\n"


@dataclass(frozen=True)
class Case:
    name: str
    rfc: str
    data: bytes
    statuses: tuple[int, ...]
    """Status of every response the server sends, in order."""
    waits: bool = False
    """It asks for a delayed reply (``/sleep``): the client keeps its sending
    side open and asks for ``Connection: close`` instead, since a client that
    half-closes during the delay is taken to have left."""

    @property
    def id(self) -> str:
        return self.name


def get(path: str = "/", extra: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + path.encode() + b" " + version + b"\r\n" + H + extra + b"\r\n"


BIG = 8 * 1024
CLOSE = b"Connection: close\r\n"

CASES: tuple[Case, ...] = (
    # -- routes and methods (RFC 9110 §9) -------------------------------------
    Case("get-root", "RFC 9110 §9.3.1", get("/"), (200,)),
    Case("get-sleep", "RFC 9110 §9.3.1", get("/sleep", CLOSE), (200,), waits=True),
    Case("get-missing", "RFC 9110 §15.5.5", get("/nope"), (404,)),
    Case("get-favicon", "RFC 9110 §15.5.5", get("/favicon.ico"), (404,)),
    Case("head-root", "RFC 9110 §9.3.2", b"HEAD / HTTP/1.1\r\n" + H + b"\r\n", (200,)),
    Case(
        "head-missing", "RFC 9110 §9.3.2", b"HEAD /x HTTP/1.1\r\n" + H + b"\r\n", (404,)
    ),
    Case(
        "post-root-405",
        "RFC 9110 §15.5.6",
        b"POST / HTTP/1.1\r\n" + H + b"\r\n",
        (405,),
    ),
    Case(
        "post-with-body-405",
        "RFC 9110 §15.5.6",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello" + get("/"),
        (405, 200),
    ),
    Case(
        "put-missing-404",
        "RFC 9110 §15.5.5",
        b"PUT /x HTTP/1.1\r\n" + H + b"\r\n",
        (404,),
    ),
    Case(
        "delete-sleep-405",
        "RFC 9110 §15.5.6",
        b"DELETE /sleep HTTP/1.1\r\n" + H + b"\r\n",
        (405,),
    ),
    Case(
        "unknown-method-501",
        "RFC 9110 §9.1",
        b"BREW / HTTP/1.1\r\n" + H + b"\r\n",
        (501,),
    ),
    Case(
        "lowercase-method-501",
        "RFC 9110 §9.1",
        b"get / HTTP/1.1\r\n" + H + b"\r\n",
        (501,),
    ),
    Case(
        "options-star",
        "RFC 9110 §9.3.7",
        b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
        (200,),
    ),
    Case(
        "options-root-405",
        "RFC 9110 §9.3.7",
        b"OPTIONS / HTTP/1.1\r\n" + H + b"\r\n",
        (405,),
    ),
    Case(
        "get-star-400", "RFC 9112 §3.2.4", b"GET * HTTP/1.1\r\n" + H + b"\r\n", (400,)
    ),
    # -- targets (RFC 9112 §3.2) --------------------------------------------------
    Case("query-string", "RFC 9112 §3.2.1", get("/?x=1"), (200,)),
    Case(
        "sleep-query",
        "RFC 9112 §3.2.1",
        get("/sleep?x=1&y=2", CLOSE),
        (200,),
        waits=True,
    ),
    Case(
        "percent-encoded", "RFC 3986 §2.3", get("/%73leep", CLOSE), (200,), waits=True
    ),
    Case(
        "absolute-form",
        "RFC 9112 §3.2.2",
        b"GET http://127.0.0.1:7878/ HTTP/1.1\r\n" + H + b"\r\n",
        (200,),
    ),
    Case(
        "absolute-form-bad-scheme",
        "RFC 9112 §3.2.2",
        b"GET ftp://127.0.0.1/ HTTP/1.1\r\n" + H + b"\r\n",
        (400,),
    ),
    Case("fragment-400", "RFC 9112 §3.2", get("/#frag"), (400,)),
    Case(
        "non-ascii-target-400",
        "RFC 9112 §3.2",
        b"GET /\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n",
        (400,),
    ),
    # -- request line (RFC 9112 §3) ---------------------------------------------
    Case("http-1.0", "RFC 9112 §9.3", get("/", version=b"HTTP/1.0"), (200,)),
    Case("http-1.0-no-host", "RFC 9112 §3.2", b"GET / HTTP/1.0\r\n\r\n", (200,)),
    Case("http-2.0-505", "RFC 9110 §15.6.6", get("/", version=b"HTTP/2.0"), (505,)),
    Case("http-1.2-505", "RFC 9110 §15.6.6", get("/", version=b"HTTP/1.2"), (505,)),
    Case(
        "lowercase-version-400", "RFC 9112 §2.3", get("/", version=b"http/1.1"), (400,)
    ),
    Case("two-spaces-400", "RFC 9112 §3", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", (400,)),
    Case(
        "tab-separator-400", "RFC 9112 §3", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", (400,)
    ),
    Case("missing-version-400", "RFC 9112 §3", b"GET /\r\n" + H + b"\r\n", (400,)),
    Case("bare-cr-400", "RFC 9112 §2.2", b"GET / HTTP/1.1\r" + H + b"\r\n", (400,)),
    Case("leading-crlf-ignored", "RFC 9112 §2.2", b"\r\n\r\n" + get("/"), (200,)),
    Case("bare-lf-lines-400", "RFC 9112 §2.2", b"GET / HTTP/1.1\nHost: x\n\n", (400,)),
    Case(
        "request-line-at-limit",
        "RFC 9112 §3",
        get("/?" + "a" * (BIG - len("GET /? HTTP/1.1"))),
        (200,),
    ),
    Case(
        "request-line-too-long-414",
        "RFC 9112 §3",
        get("/?" + "a" * (BIG - len("GET /? HTTP/1.1") + 1)),
        (414,),
    ),
    Case(
        "non-ascii-method-400",
        "RFC 9112 §3.1",
        b"G\xc9T / HTTP/1.1\r\n" + H + b"\r\n",
        (400,),
    ),
    Case(
        "nul-in-line-400",
        "RFC 9112 §3",
        b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n",
        (400,),
    ),
    # -- header fields (RFC 9112 §5, RFC 9110 §5) --------------------------------
    Case("no-host-400", "RFC 9112 §3.2", b"GET / HTTP/1.1\r\n\r\n", (400,)),
    Case("two-hosts-400", "RFC 9112 §3.2", get("/", b"Host: other\r\n"), (400,)),
    Case(
        "bad-host-400", "RFC 9112 §3.2", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", (400,)
    ),
    Case("space-before-colon-400", "RFC 9112 §5.1", get("/", b"X-A : 1\r\n"), (400,)),
    Case("obs-fold-400", "RFC 9112 §5.2", get("/", b"X-A: 1\r\n  2\r\n"), (400,)),
    Case("no-colon-400", "RFC 9112 §5", get("/", b"X-A 1\r\n"), (400,)),
    Case("ctl-in-value-400", "RFC 9110 §5.5", get("/", b"X-A: 1\x01\r\n"), (400,)),
    Case("empty-name-400", "RFC 9110 §5.1", get("/", b": 1\r\n"), (400,)),
    Case("obs-text-value-ok", "RFC 9110 §5.5", get("/", b"X-A: caf\xe9\r\n"), (200,)),
    Case(
        "100-fields-ok",
        "RFC 6585 §5",
        b"GET / HTTP/1.1\r\n"
        + H
        + b"".join(b"X-%d: v\r\n" % i for i in range(99))
        + b"\r\n",
        (200,),
    ),
    Case(
        "101-fields-431",
        "RFC 6585 §5",
        b"GET / HTTP/1.1\r\n"
        + H
        + b"".join(b"X-%d: v\r\n" % i for i in range(100))
        + b"\r\n",
        (431,),
    ),
    Case(
        "64k-header-431",
        "RFC 6585 §5",
        get("/", b"X-Big: " + b"a" * (64 * 1024) + b"\r\n"),
        (431,),
    ),
    # -- framing and smuggling (RFC 9112 §6) -------------------------------------
    Case(
        "content-length-body-discarded",
        "RFC 9112 §6.3",
        get("/", b"Content-Length: 3\r\n") + b"abc" + get("/nope"),
        (200, 404),
    ),
    Case(
        "cl-plus-400",
        "RFC 9110 §8.6",
        get("/", b"Content-Length: +3\r\n") + b"abc",
        (400,),
    ),
    Case(
        "cl-negative-400", "RFC 9110 §8.6", get("/", b"Content-Length: -1\r\n"), (400,)
    ),
    Case(
        "cl-duplicate-400",
        "RFC 9112 §6.3",
        get("/", b"Content-Length: 3\r\nContent-Length: 3\r\n") + b"abc",
        (400,),
    ),
    Case(
        "cl-conflict-400",
        "RFC 9112 §6.3",
        get("/", b"Content-Length: 3\r\nContent-Length: 4\r\n") + b"abcd",
        (400,),
    ),
    Case(
        "cl-list-400",
        "RFC 9112 §6.3",
        get("/", b"Content-Length: 3, 3\r\n") + b"abc",
        (400,),
    ),
    Case(
        "cl-te-400",
        "RFC 9112 §6.3",
        get("/", b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n") + b"0\r\n\r\n",
        (400,),
    ),
    Case(
        "chunked-discarded",
        "RFC 9112 §7.1",
        get("/", b"Transfer-Encoding: chunked\r\n")
        + b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
        + get("/nope"),
        (200, 404),
    ),
    Case(
        "chunked-bad-size-closes",
        "RFC 9112 §7.1",
        get("/", b"Transfer-Encoding: chunked\r\n") + b"zz\r\nabc\r\n0\r\n\r\n",
        (200,),  # answered from its head; the bad body ends it
    ),
    Case(
        "chunked-missing-crlf-closes",
        "RFC 9112 §7.1",
        get("/", b"Transfer-Encoding: chunked\r\n") + b"3\r\nabcX0\r\n\r\n",
        (200,),  # answered from its head; the bad body ends it
    ),
    Case(
        "te-not-final-chunked-400",
        "RFC 9112 §6.3",
        get("/", b"Transfer-Encoding: chunked, gzip\r\n"),
        (400,),
    ),
    Case(
        "te-gzip-chunked-501",
        "RFC 9112 §6.1",
        get("/", b"Transfer-Encoding: gzip, chunked\r\n") + b"0\r\n\r\n",
        (501,),
    ),
    Case(
        "te-in-http-1.0-400",
        "RFC 9112 §6.1",
        get("/", b"Transfer-Encoding: chunked\r\n", b"HTTP/1.0") + b"0\r\n\r\n",
        (400,),
    ),
    Case(
        "body-too-large-413",
        "RFC 9110 §15.5.14",
        get("/", b"Content-Length: 99999999\r\n"),
        (413,),
    ),
    # -- connections (RFC 9112 §9) -----------------------------------------------
    Case(
        "pipelined-three",
        "RFC 9112 §9.3.2",
        get("/") + get("/nope") + get("/"),
        (200, 404, 200),
    ),
    Case(
        "pipelined-head-then-get",
        "RFC 9112 §9.3.2",
        b"HEAD / HTTP/1.1\r\n" + H + b"\r\n" + get("/"),
        (200, 200),
    ),
    Case(
        "connection-close-stops",
        "RFC 9112 §9.6",
        get("/", b"Connection: close\r\n") + get("/"),
        (200,),
    ),
    Case(
        "http-1.0-keep-alive",
        "RFC 9112 §9.3",
        get("/", b"Connection: keep-alive\r\n", b"HTTP/1.0") + get("/"),
        (200, 200),
    ),
    Case(
        "http-1.0-closes",
        "RFC 9112 §9.3",
        get("/", version=b"HTTP/1.0") + get("/"),
        (200,),
    ),
    Case(
        "error-stops-pipeline",
        "RFC 9112 §9.6",
        get("/") + b"BAD\r\n\r\n" + get("/"),
        (200, 400),
    ),
    Case(
        "expect-100-continue-body-sent",
        "RFC 9110 §10.1.1",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        (405,),
    ),
    Case(
        "garbage-400",
        "RFC 9112 §2.2",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        (400,),
    ),
)
