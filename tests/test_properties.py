"""Properties of the parser and the connection, checked by hypothesis.

Small limits make every bound reachable with short inputs, so the boundaries
(request line, header section and count, body, chunk line) are crossed often.

- Any split of a byte stream gives the same outcome as feeding it whole: the
  same requests, then the same error status (or none). For valid pipelines
  that outcome is exactly the requests that were sent.
- Arbitrary bytes, and mutations of valid requests, never raise anything but
  :class:`ProtocolError`.
- :class:`HttpConnection` never raises, and every response it renders is one
  well-framed HTTP/1.1 response.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.connection import HttpConnection
from common.errors import ProtocolError
from common.limits import Limits
from common.parser import HeadCache, HTTPVersion, Request, RequestParser
from common.response import Responder
from common.routes import Pages, Router

LIMITS = Limits(
    max_request_line=64,
    max_header_bytes=160,
    max_header_count=6,
    max_body_bytes=48,
    max_chunk_line=16,
)
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ROUTER = Router(Pages.load(), sleep_seconds=5.0)
RESPONDER = Responder(clock=lambda: 784111777.0)


# -- strategies --------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the parser must report for one generated request."""

    method: str
    path: str
    version: HTTPVersion
    keep_alive: bool
    has_body: bool

    def matches(self, request: Request) -> bool:
        return (
            request.method,
            request.path,
            request.version,
            request.keep_alive,
            request.has_body,
        ) == (self.method, self.path, self.version, self.keep_alive, self.has_body)


TARGETS = [
    ("/", "/"),
    ("/sleep", "/sleep"),
    ("/sleep?x=1&y=/?", "/sleep"),
    ("/%73leep", "/sleep"),
    ("/nope/x.html", "/nope/x.html"),
    ("http://127.0.0.1:7878/", "/"),
    ("http://h/sleep?q", "/sleep"),
    ("*", "*"),
]
TOKEN_VALUE = st.text(alphabet="abcXYZ019-._~!", min_size=0, max_size=12)
FIELD_NAME = st.sampled_from(["X-A", "x-b", "Accept", "User-Agent", "X-Trace-Id"])
OWS = st.sampled_from(["", " ", "\t", " \t "])
EOL = st.just(b"\r\n")  # a bare LF in a head is refused (test_parser)
LEADING = st.sampled_from([b"\r\n", b"\n"])  # empty lines before a request


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[bytes, Expected]:
    """One valid request within LIMITS, with some leading empty lines."""
    version = draw(st.sampled_from(list(HTTPVersion)))
    target, path = draw(st.sampled_from(TARGETS))
    methods = ["OPTIONS"] if target == "*" else ["GET", "HEAD", "POST", "PUT", "DELETE"]
    method = draw(st.sampled_from(methods))
    fields: list[bytes] = []
    if version is HTTPVersion.HTTP_1_1 or draw(st.booleans()):
        fields.append(
            b"Host: " + draw(st.sampled_from([b"localhost", b"127.0.0.1:7878"]))
        )
    connection = draw(
        st.sampled_from([None, "close", "keep-alive", "Keep-Alive, close"])
    )
    if connection is not None:
        fields.append(b"Connection: " + connection.encode())
    tokens = {t.strip().lower() for t in (connection or "").split(",")}
    if version is HTTPVersion.HTTP_1_1:
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens and "close" not in tokens
    for name, value in draw(st.lists(st.tuples(FIELD_NAME, TOKEN_VALUE), max_size=2)):
        before, after = draw(OWS), draw(OWS)  # stripped from the value
        fields.append(f"{name}:{before}{value}{after}".encode())

    framing = draw(
        st.sampled_from(
            ["none", "length", "chunked"]
            if version is HTTPVersion.HTTP_1_1
            else ["none", "length"]
        )
    )
    body = b""
    has_body = False
    if framing == "length":
        content = draw(st.binary(max_size=20))
        fields.append(b"Content-Length: %d" % len(content))
        body, has_body = content, bool(content)
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        for chunk in draw(st.lists(st.binary(min_size=1, max_size=10), max_size=3)):
            extension = draw(st.sampled_from([b"", b";a=b", b";x"]))
            body += b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk)
        body += b"0\r\n"
        for name, value in draw(
            st.lists(st.tuples(FIELD_NAME, TOKEN_VALUE), max_size=2)
        ):
            body += f"{name}: {value}\r\n".encode()
        body += b"\r\n"
        has_body = True

    lines = [f"{method} {target} {version.value}".encode(), *fields]
    head = b"".join(line + draw(EOL) for line in lines) + draw(EOL)
    leading = b"".join(draw(st.lists(LEADING, max_size=2)))
    expected = Expected(method, path, version, keep_alive, has_body)
    return leading + head + body, expected


PIPELINES = st.lists(valid_request(), min_size=1, max_size=4)

# Pieces that make near-requests: the grammar's own bytes, and runs long
# enough to cross LIMITS in a few steps.
VOCABULARY = st.sampled_from(
    [
        b"GET ",
        b"POST ",
        b"OPTIONS ",
        b"/",
        b"*",
        b"/sleep",
        b"http://h",
        b" HTTP/1.1",
        b" HTTP/1.0",
        b" HTTP/2.0",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b":",
        b"Host: x",
        b"Host:",
        b"Connection: close",
        b"Content-Length: ",
        b"Transfer-Encoding: chunked",
        b"Expect: 100-continue",
        b"0",
        b"5",
        b"f",
        b";e",
        b"hello",
        b"a" * 16,
        b"b" * 40,
        b"\x00",
        b"\xff",
        b"%",
    ]
)
NEAR_REQUESTS = st.lists(VOCABULARY, max_size=40).map(b"".join)


@st.composite
def mutated_pipeline(draw: st.DrawFn) -> bytes:
    """A valid pipeline with a few bytes replaced, inserted, deleted or repeated."""
    data = bytearray(b"".join(raw for raw, _ in draw(PIPELINES)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        byte = draw(st.sampled_from(b"\r\n \t:;0a/%\x00\x7f\xff"))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "repeat"]))
        if kind == "replace":
            data[at] = byte
        elif kind == "insert":
            data.insert(at, byte)
        elif kind == "delete":
            del data[at]
        else:
            end = draw(st.integers(at, min(len(data), at + 40)))
            data[at:at] = data[at:end]
    return bytes(data)


ANY_BYTES = st.one_of(st.binary(max_size=200), NEAR_REQUESTS, mutated_pipeline())


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


CUTS = st.lists(st.integers(0, 1000), max_size=12)


# -- the parser ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    requests: tuple[Request, ...]
    error: int | None
    said: tuple[str, str | None] | None = None
    """The error's detail and the request line it logs."""


def outcome(
    pieces: list[bytes],
    *,
    eof: bool,
    one_pass: bool = True,
    cache: HeadCache | None = None,
) -> Outcome:
    """Feed ``pieces`` one by one, draining after each; stop at the first error.

    Anything but ProtocolError escapes and fails the test.
    """
    parser = RequestParser(LIMITS, cache, one_pass=one_pass)
    requests: list[Request] = []
    try:
        for piece in pieces:
            parser.feed(piece)
            while (request := parser.next_request()) is not None:
                requests.append(request)
        if eof:
            parser.feed_eof()
            while (request := parser.next_request()) is not None:
                requests.append(request)
    except ProtocolError as error:
        assert parser.next_request() is None  # a failed parser stays failed
        said = (error.detail, error.request_line)
        return Outcome(tuple(requests), error.status.value, said)
    return Outcome(tuple(requests), None)


@SETTINGS
@given(pipeline=PIPELINES, cuts=CUTS, eof=st.booleans())
def test_any_split_of_a_valid_pipeline_yields_the_requests_sent(
    pipeline: list[tuple[bytes, Expected]], cuts: list[int], eof: bool
) -> None:
    data = b"".join(raw for raw, _ in pipeline)
    whole = outcome([data], eof=eof)
    assert whole.error is None, (data, whole)
    assert len(whole.requests) == len(pipeline)
    for request, (_, expected) in zip(whole.requests, pipeline, strict=True):
        assert expected.matches(request), (request, expected)
    assert outcome(split(data, cuts), eof=eof) == whole


@SETTINGS
@given(pipeline=PIPELINES)
def test_a_valid_pipeline_fed_byte_by_byte_yields_the_same(
    pipeline: list[tuple[bytes, Expected]],
) -> None:
    data = b"".join(raw for raw, _ in pipeline)
    single_bytes = [data[i : i + 1] for i in range(len(data))]
    assert outcome(single_bytes, eof=False) == outcome([data], eof=False)


@settings(SETTINGS, max_examples=300)
@given(data=ANY_BYTES, cuts=CUTS, eof=st.booleans())
def test_arbitrary_bytes_raise_only_protocol_errors_whatever_the_split(
    data: bytes, cuts: list[int], eof: bool
) -> None:
    """The outcome (requests, then the error's status) never depends on the split."""
    assert outcome(split(data, cuts), eof=eof) == outcome([data], eof=eof)


@settings(SETTINGS, max_examples=300)
@given(data=ANY_BYTES, cuts=CUTS, eof=st.booleans())
def test_the_one_pass_reading_agrees_with_the_line_by_line_one(
    data: bytes, cuts: list[int], eof: bool
) -> None:
    """Common heads take one regex pass; every head, the plain parse. Same
    requests, same error, same detail and logged line, whatever the bytes."""
    pieces = split(data, cuts)
    plain = outcome(pieces, eof=eof, one_pass=False)
    assert outcome(pieces, eof=eof) == plain
    assert outcome(pieces, eof=eof, cache=HeadCache(LIMITS)) == plain


@SETTINGS
@given(pipeline=PIPELINES, mutated=st.lists(mutated_pipeline(), max_size=3))
def test_requests_read_one_per_piece_agree_with_the_plain_parse(
    pipeline: list[tuple[bytes, Expected]], mutated: list[bytes]
) -> None:
    """A read holding exactly one head is parsed where it lies (feed's short
    cut, remembered in the cache): the same outcome as the line-by-line parse."""
    pieces = [raw for raw, _ in pipeline] + mutated
    cache = HeadCache(LIMITS)
    plain = outcome(pieces, eof=False, one_pass=False)
    for _ in range(2):  # the second time round, the heads come from the cache
        assert outcome(pieces, eof=False, cache=cache) == plain


# -- the connection --------------------------------------------------------------------


def check_response(raw: bytes, *, head: bool) -> None:
    """One complete response: a status line, CRLF headers, a body of its length."""
    assert raw.startswith(b"HTTP/1.1 ")
    head_bytes, separator, body = raw.partition(b"\r\n\r\n")
    assert separator
    headers = dict(line.split(b": ", 1) for line in head_bytes.split(b"\r\n")[1:])
    length = int(headers[b"Content-Length"])
    assert len(body) == (0 if head else length)


@SETTINGS
@given(data=ANY_BYTES, cuts=CUTS, eof=st.booleans())
def test_http_connection_never_raises(data: bytes, cuts: list[int], eof: bool) -> None:
    conn = HttpConnection(ROUTER, LIMITS)
    pieces: list[bytes] = [*split(data, cuts), *([b""] if eof else [])]
    for piece in pieces:
        conn.receive(piece)
        while (exchange := conn.next_exchange()) is not None:
            check_response(exchange.render(RESPONDER), head=exchange.head)
            if not exchange.keep_alive:
                assert conn.closed
    if conn.closed:
        conn.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.next_exchange() is None
