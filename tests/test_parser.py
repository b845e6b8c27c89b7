"""The incremental request parser, rule by rule (RFC 9110, RFC 9112).

Every limit is checked at its boundary and one byte past it, and each error
by the status a client would receive. Raw requests are built with CRLF unless
a test is about line endings.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest

from common.errors import (
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    MethodNotImplemented,
    ProtocolError,
    TransferCodingNotImplemented,
    URITooLong,
    VersionNotSupported,
)
from common.limits import Limits
from common.parser import HTTPVersion, Request, RequestParser

HOST = b"Host: localhost\r\n"


def get(
    target: bytes = b"/", extra: bytes = b"", version: bytes = b"HTTP/1.1"
) -> bytes:
    """A GET with a Host header, ``extra`` header lines, and the blank line."""
    return b"GET " + target + b" " + version + b"\r\n" + HOST + extra + b"\r\n"


def post(body: bytes, extra: bytes = b"", target: bytes = b"/") -> bytes:
    """A POST with a Content-Length body."""
    length = b"Content-Length: %d\r\n" % len(body)
    return b"POST " + target + b" HTTP/1.1\r\n" + HOST + length + extra + b"\r\n" + body


def chunked(body: bytes, target: bytes = b"/") -> bytes:
    """A POST whose body is ``body``, already chunk-encoded by the caller."""
    return (
        b"POST " + target + b" HTTP/1.1\r\n" + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n" + body
    )  # fmt: skip


def drain(parser: RequestParser) -> list[Request]:
    """Every request the parser can hand out now."""
    requests = []
    while (request := parser.next_request()) is not None:
        requests.append(request)
    return requests


def parse(
    data: bytes, *, limits: Limits | None = None, eof: bool = False
) -> list[Request]:
    parser = RequestParser(limits)
    parser.feed(data)
    if eof:
        parser.feed_eof()
    return drain(parser)


def parse_one(data: bytes, *, limits: Limits | None = None) -> Request:
    requests = parse(data, limits=limits)
    assert len(requests) == 1, requests
    return requests[0]


def error(
    data: bytes, *, limits: Limits | None = None, eof: bool = False
) -> ProtocolError:
    """The protocol error that ``data`` ends in (requests before it are dropped)."""
    with pytest.raises(ProtocolError) as caught:
        parse(data, limits=limits, eof=eof)
    return caught.value


def fed_in_pieces(
    data: bytes, sizes: int, *, limits: Limits | None = None
) -> list[Request]:
    """Feed ``data`` ``sizes`` bytes at a time, draining after each piece."""
    parser = RequestParser(limits)
    requests = []
    for start in range(0, len(data), sizes):
        parser.feed(data[start : start + sizes])
        requests += drain(parser)
    return requests


# -- incremental feeding and pipelining ---------------------------------------


def test_a_whole_request_parses_into_its_parts() -> None:
    request = parse_one(
        b"GET /sleep?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  a b \r\n\r\n"
    )
    assert request.method == "GET"
    assert request.target == "/sleep?x=1"
    assert request.path == "/sleep"
    assert request.version is HTTPVersion.HTTP_1_1
    assert request.headers == (("host", "example.com"), ("x-thing", "a b"))
    assert request.header("x-thing") == "a b"
    assert request.header("absent") is None
    assert request.request_line == "GET /sleep?x=1 HTTP/1.1"
    assert request.keep_alive
    assert not request.has_body


def test_an_incomplete_head_needs_more_data() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert parser.next_request() is None
    parser.feed(b"\r\n")
    request = parser.next_request()
    assert request is not None
    assert request.path == "/"
    assert parser.next_request() is None


PIPELINE = (
    get(b"/")
    + post(b"hello", target=b"/a")
    + chunked(b"3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n", target=b"/b")
    + get(b"/sleep", b"Connection: close\r\n")
    + b"HEAD /c HTTP/1.0\r\n\r\n"
)
PIPELINE_PATHS = ["/", "/a", "/b", "/sleep", "/c"]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(PIPELINE)])
def test_pipelined_requests_come_out_in_order_whatever_the_split(size: int) -> None:
    """RFC 9112 §9.3.2: pipelined requests are answered in the order received."""
    requests = fed_in_pieces(PIPELINE, size)
    assert [r.path for r in requests] == PIPELINE_PATHS
    assert requests == parse(PIPELINE)


def test_every_split_point_of_a_pipeline_gives_the_same_requests() -> None:
    whole = parse(PIPELINE)
    for cut in range(len(PIPELINE) + 1):
        parser = RequestParser()
        parser.feed(PIPELINE[:cut])
        requests = drain(parser)
        parser.feed(PIPELINE[cut:])
        requests += drain(parser)
        assert requests == whole, cut


def test_a_head_is_handed_out_before_its_body_arrives() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhe")
    request = parser.next_request()
    assert request is not None
    assert request.has_body
    assert parser.body_pending
    assert parser.next_request() is None
    parser.feed(b"llo" + get(b"/next"))
    following = parser.next_request()
    assert following is not None
    assert following.path == "/next"
    assert not parser.body_pending


# -- request line length: 414 (RFC 9112 §3) -----------------------------------


def request_line_of(length: int) -> bytes:
    """``GET /aaa… HTTP/1.1`` exactly ``length`` bytes long, CRLF excluded."""
    fixed = len(b"GET / HTTP/1.1")
    line = b"GET /" + b"a" * (length - fixed) + b" HTTP/1.1"
    assert len(line) == length
    return line


def test_request_line_of_exactly_8_kib_is_accepted() -> None:
    """RFC 9112 §3: the server's request-line limit is 8 KiB, inclusive."""
    request = parse_one(request_line_of(8192) + b"\r\n" + HOST + b"\r\n")
    assert len(request.request_line) == 8192


def test_request_line_one_byte_past_8_kib_is_414() -> None:
    """RFC 9112 §3: a request line longer than the server accepts → 414."""
    caught = error(request_line_of(8193) + b"\r\n" + HOST + b"\r\n")
    assert isinstance(caught, URITooLong)
    assert caught.status == HTTPStatus.REQUEST_URI_TOO_LONG


def test_an_unfinished_request_line_past_8_kib_is_414_at_once() -> None:
    """RFC 9112 §3: the limit applies before the line ends (no unbounded buffer)."""
    parser = RequestParser()
    parser.feed(request_line_of(8192))
    assert parser.next_request() is None
    parser.feed(b"a")
    with pytest.raises(URITooLong):
        parser.next_request()


@pytest.mark.parametrize("whole", [True, False], ids=["whole-head", "unfinished"])
def test_a_method_longer_than_any_known_past_the_line_limit_is_501(
    whole: bool,
) -> None:
    """RFC 9112 §3: a method longer than any the server implements SHOULD get
    501; a long line whose method is short is a long target, 414."""
    line = b"A" * 9000 + b" / HTTP/1.1"
    data = line + b"\r\n" + HOST + b"\r\n\r\n" if whole else line[:8500]
    parser = RequestParser()
    parser.feed(data)
    with pytest.raises(MethodNotImplemented) as caught:
        parser.next_request()
    assert caught.value.status == HTTPStatus.NOT_IMPLEMENTED
    parser = RequestParser()
    parser.feed(b"OPTIONS /" + b"a" * 9000)
    with pytest.raises(URITooLong):
        parser.next_request()


def test_an_unfinished_request_line_still_counts_headers_to_come() -> None:
    """The line has ended (LF seen) but the head has not: 414 anyway."""
    parser = RequestParser()
    parser.feed(request_line_of(8193) + b"\r\nHost: x\r\n")
    with pytest.raises(URITooLong):
        parser.next_request()


def test_an_8_kib_request_line_split_between_cr_and_lf_is_accepted() -> None:
    """The CR of the line's CRLF is not part of the request line (RFC 9112 §3)."""
    parser = RequestParser()
    parser.feed(request_line_of(8192) + b"\r")
    assert parser.next_request() is None
    parser.feed(b"\n" + HOST + b"\r\n")
    request = parser.next_request()
    assert request is not None
    assert len(request.request_line) == 8192


# -- header section: 431 (RFC 6585 §5) ----------------------------------------


def header_section_of(size: int) -> bytes:
    """Field lines whose section (CRLFs between them) is ``size`` bytes."""
    first = HOST
    prefix = b"X-Big: "
    filler = size - len(first) - len(prefix)
    section = first + prefix + b"a" * filler
    assert len(section) == size
    return section


def test_header_section_of_exactly_64_kib_is_accepted() -> None:
    request = parse_one(b"GET / HTTP/1.1\r\n" + header_section_of(65536) + b"\r\n\r\n")
    assert len(request.header("x-big") or "") > 60000


def test_header_section_one_byte_past_64_kib_is_431() -> None:
    """RFC 6585 §5: header fields too large → 431."""
    caught = error(b"GET / HTTP/1.1\r\n" + header_section_of(65537) + b"\r\n\r\n")
    assert isinstance(caught, HeaderFieldsTooLarge)
    assert caught.status == 431


def test_an_unfinished_header_section_past_64_kib_is_431_at_once() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\n" + header_section_of(65536))
    assert parser.next_request() is None
    parser.feed(b"a")
    with pytest.raises(HeaderFieldsTooLarge):
        parser.next_request()


@pytest.mark.parametrize("held_back", [b"\r\n\r\n", b"\n\r\n", b"\r\n", b"\n"])
def test_a_64_kib_header_section_is_accepted_however_its_end_is_split(
    held_back: bytes,
) -> None:
    """A half-arrived terminator is not counted as header bytes."""
    data = b"GET / HTTP/1.1\r\n" + header_section_of(65536) + b"\r\n\r\n"
    parser = RequestParser()
    parser.feed(data[: -len(held_back)])
    assert parser.next_request() is None
    parser.feed(held_back)
    assert parser.next_request() is not None


def fields(count: int) -> bytes:
    return HOST + b"".join(b"X-%d: v\r\n" % i for i in range(count - 1))


def test_100_header_fields_are_accepted() -> None:
    assert len(parse_one(b"GET / HTTP/1.1\r\n" + fields(100) + b"\r\n").headers) == 100


def test_101_header_fields_are_431() -> None:
    """RFC 6585 §5: too many header fields → 431."""
    caught = error(b"GET / HTTP/1.1\r\n" + fields(101) + b"\r\n")
    assert isinstance(caught, HeaderFieldsTooLarge)


def test_limits_are_configurable() -> None:
    limits = Limits(max_request_line=20, max_header_count=1)
    assert parse_one(b"GET /123456 HTTP/1.1\r\nHost: x\r\n\r\n", limits=limits)
    with pytest.raises(URITooLong):
        parse(b"GET /1234567 HTTP/1.1\r\nHost: x\r\n\r\n", limits=limits)
    with pytest.raises(HeaderFieldsTooLarge):
        parse(b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n", limits=limits)


def test_limit_defaults_are_those_of_the_issue() -> None:
    limits = Limits()
    assert limits.max_request_line == 8 * 1024
    assert limits.max_header_bytes == 64 * 1024
    assert limits.max_header_count == 100
    with pytest.raises(AttributeError):
        limits.max_header_count = 5  # type: ignore[misc]


# -- malformed request lines: 400 (RFC 9112 §3) -------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"GET  / HTTP/1.1",  # two spaces
        b" GET / HTTP/1.1",  # leading space
        b"GET / HTTP/1.1 ",  # trailing space
        b"GET / HTTP/1.1 x",  # four parts
        b"GET /",  # no version
        b"GET",  # method only
        b"/ HTTP/1.1",  # no method
        b"GET\t/ HTTP/1.1",  # tab instead of SP
        b"GET /\tHTTP/1.1",
        b"GET / HTTP/1.1\rX",  # bare CR
        b"GET\r/ HTTP/1.1",
        b"G(T / HTTP/1.1",  # method not a token
        b"GET /a b HTTP/1.1",  # space in the target
    ],
)
def test_malformed_request_line_is_400(line: bytes) -> None:
    """RFC 9112 §3: method SP request-target SP HTTP-version, exactly."""
    caught = error(line + b"\r\n" + HOST + b"\r\n")
    assert isinstance(caught, BadRequest)
    assert caught.status == 400


def test_bare_cr_ending_a_request_line_without_headers_is_400() -> None:
    """RFC 9112 §2.2: a bare CR is invalid, even just before the CRLF."""
    assert isinstance(error(b"GET / HTTP/1.0\r\r\n\r\n"), BadRequest)


# -- header fields: 400 (RFC 9112 §5, RFC 9110 §5.5) --------------------------


@pytest.mark.parametrize(
    "field",
    [
        b"X-Name : value",  # whitespace before the colon (RFC 9112 §5.1)
        b"X-Name\t: value",
        b"X Name: value",  # not a token
        b": value",  # empty name
        b"X-Name value",  # no colon
        b"X-\xe9: value",  # non-ASCII name
        b"X-Name: a\x00b",  # NUL (RFC 9110 §5.5)
        b"X-Name: a\x7fb",  # DEL
        b"X-Name: a\x1bb",  # ESC
        b"X-Name: a\rb",  # bare CR (RFC 9112 §2.2)
        b"X-Name: a\r",  # bare CR just before the last line's CRLF
    ],
)
def test_bad_header_line_is_400(field: bytes) -> None:
    caught = error(b"GET / HTTP/1.1\r\n" + HOST + field + b"\r\n\r\n")
    assert isinstance(caught, BadRequest)


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
def test_obs_fold_is_400(fold: bytes) -> None:
    """RFC 9112 §5.2: a server MUST reject obs-fold with 400 (or unfold it)."""
    caught = error(
        b"GET / HTTP/1.1\r\n" + HOST + b"X-Long: start\r\n" + fold + b"\r\n\r\n"
    )
    assert isinstance(caught, BadRequest)


def test_tab_and_obs_text_in_a_value_are_accepted() -> None:
    """RFC 9110 §5.5: field-vchar includes HTAB (inside) and obs-text."""
    request = parse_one(get(b"/", b"X-Name: \ta\tb\xe9 \r\n"))
    assert request.header("x-name") == "a\tb\xe9"


# -- Host: 400 (RFC 9112 §3.2) -----------------------------------------------


def test_http11_without_host_is_400() -> None:
    """RFC 9112 §3.2: a server MUST respond 400 to HTTP/1.1 lacking Host."""
    caught = error(b"GET / HTTP/1.1\r\n\r\n")
    assert isinstance(caught, BadRequest)
    assert "Host" in caught.detail


def test_two_host_headers_are_400() -> None:
    """RFC 9112 §3.2: ...or with more than one Host header line."""
    caught = error(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")
    assert isinstance(caught, BadRequest)


def test_http10_without_host_is_accepted() -> None:
    request = parse_one(b"GET / HTTP/1.0\r\n\r\n")
    assert request.version is HTTPVersion.HTTP_1_0


@pytest.mark.parametrize(
    "value", [b"a b", b"user@host", b"host:port", b"[::1", b"exa\x80mple", b"a/b"]
)
def test_invalid_host_value_is_400(value: bytes) -> None:
    """RFC 9112 §3.2: a Host field with an invalid value → 400."""
    caught = error(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n")
    assert isinstance(caught, BadRequest)


@pytest.mark.parametrize("one_pass", [True, False])
def test_an_invalid_host_after_valid_ones_on_a_connection_is_400(
    one_pass: bool,
) -> None:
    """A Host is checked once per connection while it repeats: a different
    one, later on the same connection, is checked again."""
    parser = RequestParser(one_pass=one_pass)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 2)
    assert parser.next_request() is not None
    assert parser.next_request() is not None
    parser.feed(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
    with pytest.raises(BadRequest):
        parser.next_request()


@pytest.mark.parametrize(
    "value", [b"localhost", b"example.com:8080", b"127.0.0.1:7878", b"[::1]:7878", b""]
)
def test_valid_host_values_are_accepted(value: bytes) -> None:
    """RFC 9110 §7.2: uri-host [":" port]; empty when there is no authority."""
    assert parse_one(b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n")


# -- Content-Length (RFC 9112 §6.3, RFC 9110 §8.6) -----------------------------


@pytest.mark.parametrize(
    "value", [b"+5", b"-1", b"1.0", b"", b"abc", b"5, 6", b"5, 5", b"0x5", b"5 5"]
)
def test_bad_content_length_is_400(value: bytes) -> None:
    """RFC 9112 §6.3: an invalid Content-Length is unrecoverable → 400."""
    caught = error(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + value + b"\r\n\r\n"
    )
    assert isinstance(caught, BadRequest)


def test_two_content_length_lines_are_400_even_when_equal() -> None:
    """RFC 9110 §8.6: a repeated Content-Length MAY be rejected; we do."""
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
    )
    assert isinstance(error(data), BadRequest)


def test_content_length_at_the_body_limit_is_read() -> None:
    limits = Limits(max_body_bytes=10)
    requests = parse(post(b"x" * 10) + get(b"/next"), limits=limits)
    assert [r.path for r in requests] == ["/", "/next"]


def test_content_length_past_the_body_limit_is_413() -> None:
    """RFC 9110 §15.5.14: content larger than the server will process → 413."""
    caught = error(post(b"x" * 11), limits=Limits(max_body_bytes=10))
    assert isinstance(caught, ContentTooLarge)
    assert caught.status == 413


def test_default_body_limit_is_1_mib() -> None:
    head = b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n"
    assert parse(head % (1024 * 1024))[0].has_body
    assert isinstance(error(head % (1024 * 1024 + 1)), ContentTooLarge)


@pytest.mark.parametrize("digits", [b"9" * 20, b"9" * 5000, b"1" + b"0" * 10000])
def test_an_enormous_content_length_is_413_not_a_crash(digits: bytes) -> None:
    """Past 4300 digits int() raises ValueError; the parser must answer 413."""
    caught = error(
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: " + digits + b"\r\n\r\n"
    )
    assert isinstance(caught, ContentTooLarge)


def test_leading_zeros_in_content_length_do_not_count() -> None:
    """RFC 9110 §8.6: Content-Length = 1*DIGIT; 0…05 is five."""
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: "
        + b"0" * 5000
        + b"5\r\n\r\nhello"
    )
    requests = parse(data + get(b"/next"))
    assert [r.path for r in requests] == ["/", "/next"]


def test_content_length_zero_has_no_body() -> None:
    request = parse_one(post(b""))
    assert not request.has_body


def test_a_body_is_read_and_discarded_so_the_next_request_parses() -> None:
    """RFC 9112 §6.3: the body's length is what separates it from the next."""
    body = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    requests = parse(post(body) + get(b"/next"))
    assert [r.path for r in requests] == ["/", "/next"]


# -- chunked (RFC 9112 §7.1) ---------------------------------------------------


def test_a_chunked_body_is_decoded_and_discarded() -> None:
    body = b"5\r\nhello\r\nA;name=value;flag\r\n0123456789\r\n0\r\n\r\n"
    requests = parse(chunked(body) + get(b"/next"))
    assert [r.path for r in requests] == ["/", "/next"]
    assert requests[0].has_body


def test_chunked_trailers_are_read_and_discarded() -> None:
    """RFC 9112 §7.1.2: a trailer section may follow the last chunk."""
    body = b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"
    assert [r.path for r in parse(chunked(body) + get(b"/next"))] == ["/", "/next"]


def test_chunked_coding_name_is_case_insensitive() -> None:
    """RFC 9112 §7: transfer-coding names are case-insensitive."""
    data = (
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: ChUnKeD\r\n\r\n0\r\n\r\n"
    )
    assert [r.path for r in parse(data + get(b"/next"))] == ["/", "/next"]


@pytest.mark.parametrize(
    "size_line",
    [
        *(b"g", b"", b"-1", b"0x5", b"5 5", b" 5", b"1" * 17, b"5;\x00", b"5\x7f"),
        # RFC 9112 §7.1.1: an extension is ";" name [ "=" token / quoted-string ]
        *(b"5;", b"5 ;", b"5; ", b"5;=x", b"5;a=", b"5;a b", b"5;a=b c"),
        *(b'5;a="open', b'5;a="x"y', b'5;a="\\', b"5;a=\x80", b"5 ", b"5\t"),
    ],
)
def test_bad_chunk_size_is_400(size_line: bytes) -> None:
    caught = error(chunked(size_line + b"\r\nhello\r\n0\r\n\r\n"))
    assert isinstance(caught, BadRequest)


@pytest.mark.parametrize(
    "size_line",
    [
        *(b"5;a", b"5;a=b", b"5 ; a = b", b"5\t;\ta\t=\tb", b"5;a;b=c"),
        *(b'5;a=""', b'5;a="x y;z"', b'5;a="\\""', b'5;a="\xe9"', b"5;!#$%&'*+-.^_`|~"),
    ],
)
def test_chunk_extensions_in_the_grammar_are_accepted(size_line: bytes) -> None:
    requests = parse(chunked(size_line + b"\r\nhello\r\n0\r\n\r\n") + get(b"/next"))
    assert [r.path for r in requests] == ["/", "/next"]


def test_chunk_data_without_its_crlf_is_400() -> None:
    assert isinstance(error(chunked(b"5\r\nhelloX\r\n0\r\n\r\n")), BadRequest)


@pytest.mark.parametrize(
    "body",
    [
        b"5\nhello\r\n0\r\n\r\n",  # bare LF after the size
        b"5\r\nhello\n0\r\n\r\n",  # bare LF after the data
        b"5\r\nhello\r\n0\n\r\n",  # bare LF after the last chunk
        b"5\r\nhello\r\n0\r\nX: y\n\r\n",  # bare LF in a trailer
    ],
)
def test_bare_lf_in_chunked_framing_is_400(body: bytes) -> None:
    """RFC 9112 §7.1: chunk lines end in CRLF; a lenient LF invites smuggling."""
    assert isinstance(error(chunked(body)), BadRequest)


def test_a_bad_trailer_field_is_400() -> None:
    assert isinstance(error(chunked(b"0\r\nBad Name: x\r\n\r\n")), BadRequest)


def test_chunked_body_past_the_body_limit_is_413() -> None:
    limits = Limits(max_body_bytes=10)
    assert parse(chunked(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"), limits=limits)
    caught = error(chunked(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n"), limits=limits)
    assert isinstance(caught, ContentTooLarge)


def test_chunk_size_line_at_its_limit_is_accepted_however_split() -> None:
    limits = Limits(max_chunk_line=16)
    line = b"5;" + b"e" * 14
    data = chunked(line + b"\r\nhello\r\n0\r\n\r\n")
    cut = data.index(line) + len(line) + 1  # between CR and LF
    parser = RequestParser(limits)
    parser.feed(data[:cut])
    requests = drain(parser)
    parser.feed(data[cut:])
    requests += drain(parser)
    assert len(requests) == 1
    assert not parser.body_pending


def test_chunk_size_line_past_its_limit_is_400() -> None:
    limits = Limits(max_chunk_line=16)
    caught = error(
        chunked(b"5;" + b"e" * 15 + b"\r\nhello\r\n0\r\n\r\n"), limits=limits
    )
    assert isinstance(caught, BadRequest)


def test_a_framing_error_in_a_buffered_body_comes_after_its_request() -> None:
    """The request itself was fine: it is answered, then the error closes."""
    parser = RequestParser()
    parser.feed(chunked(b"zz\r\n"))
    request = parser.next_request()
    assert request is not None
    assert request.path == "/"
    with pytest.raises(BadRequest):
        parser.next_request()
    assert parser.next_request() is None


# -- Transfer-Encoding (RFC 9112 §6.1, §6.3) ----------------------------------


def test_content_length_with_transfer_encoding_is_400() -> None:
    """RFC 9112 §6.3: TE with CL is a smuggling attempt; reject and close."""
    data = (
        b"POST / HTTP/1.1\r\n" + HOST
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )  # fmt: skip
    assert isinstance(error(data), BadRequest)


def test_transfer_encoding_in_http10_is_400() -> None:
    """RFC 9112 §6.1: TE in an HTTP/1.0 message means faulty framing."""
    data = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert isinstance(error(data), BadRequest)


@pytest.mark.parametrize(
    "codings", [[b"gzip, chunked"], [b"gzip", b"chunked"], [b"deflate,chunked"]]
)
def test_unknown_coding_before_chunked_is_501(codings: list[bytes]) -> None:
    """RFC 9112 §6.1: a transfer coding we do not understand → 501."""
    lines = b"".join(b"Transfer-Encoding: " + c + b"\r\n" for c in codings)
    caught = error(b"POST / HTTP/1.1\r\n" + HOST + lines + b"\r\n0\r\n\r\n")
    assert isinstance(caught, TransferCodingNotImplemented)
    assert caught.status == 501


@pytest.mark.parametrize(
    "value", [b"chunked, gzip", b"gzip", b"chunked, chunked", b" , "]
)
def test_chunked_not_final_or_repeated_is_400(value: bytes) -> None:
    """RFC 9112 §6.3: chunked must be the final coding, applied once, else 400."""
    caught = error(
        b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: " + value + b"\r\n\r\n"
    )
    assert isinstance(caught, BadRequest)


def test_empty_elements_in_the_transfer_encoding_list_are_ignored() -> None:
    """RFC 9110 §5.6.1: a recipient ignores empty list elements."""
    data = (
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: , chunked, \r\n\r\n0\r\n\r\n"
    )
    assert [r.path for r in parse(data + get(b"/next"))] == ["/", "/next"]


# -- versions (RFC 9112 §2.3) --------------------------------------------------


@pytest.mark.parametrize(
    "version", [b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/0.9"]
)
def test_other_http_versions_are_505(version: bytes) -> None:
    """RFC 9110 §15.6.6: a major/minor version we do not speak → 505."""
    caught = error(b"GET / " + version + b"\r\n" + HOST + b"\r\n")
    assert isinstance(caught, VersionNotSupported)
    assert caught.status == 505


@pytest.mark.parametrize(
    "version",
    [b"HTTP/1", b"http/1.1", b"HTTP/1.1.1", b"HTTP/11", b"HTTP/1.10", b"HTTPS/1.1"],
)
def test_malformed_versions_are_400(version: bytes) -> None:
    """RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive."""
    caught = error(b"GET / " + version + b"\r\n" + HOST + b"\r\n")
    assert isinstance(caught, BadRequest)


# -- methods (RFC 9110 §9.1) ---------------------------------------------------


@pytest.mark.parametrize("method", [b"FOO", b"get", b"Get", b"BREW"])
def test_unknown_methods_are_501(method: bytes) -> None:
    """RFC 9110 §9.1: method names are case-sensitive; unknown → 501."""
    caught = error(method + b" / HTTP/1.1\r\n" + HOST + b"\r\n")
    assert isinstance(caught, MethodNotImplemented)
    assert caught.status == 501


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE", "HEAD"])
def test_known_methods_parse(method: str) -> None:
    """Known methods are the router's business (405 where not allowed)."""
    assert (
        parse_one(method.encode() + b" / HTTP/1.1\r\n" + HOST + b"\r\n").method
        == method
    )


# -- request targets (RFC 9112 §3.2) -------------------------------------------


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/sleep?x=1", "/sleep"),  # origin-form with a query
        (b"/?a=b?c/d", "/"),
        (b"/%73leep", "/sleep"),  # percent-decoding (RFC 3986 §2.1)
        (b"/a%20b", "/a b"),
        (b"http://127.0.0.1:7878/", "/"),  # absolute-form (RFC 9112 §3.2.2)
        (b"http://127.0.0.1:7878", "/"),
        (b"HTTP://example.com/sleep?x=1", "/sleep"),
        (b"https://example.com/%73leep", "/sleep"),
    ],
)
def test_request_target_forms_give_the_path(target: bytes, path: str) -> None:
    request = parse_one(get(target))
    assert request.path == path
    assert request.target == target.decode()


@pytest.mark.parametrize(
    "target",
    [
        b"ftp://example.com/",  # only http and https
        b"http:///",  # empty authority
        b"http://user@example.com/",  # userinfo (RFC 9110 §4.2.4)
        b"/a#fragment",
        b"/%2",  # bad percent-encoding
        b"/%zz",
        b"/<script>",
        b"/\xc3\xa9",  # raw non-ASCII
        b"sleep",
        b"*",  # asterisk-form is only for OPTIONS
    ],
)
def test_invalid_request_targets_are_400(target: bytes) -> None:
    assert isinstance(error(get(target)), BadRequest)


def test_options_asterisk_is_accepted() -> None:
    """RFC 9112 §3.2.4: OPTIONS * asks about the server as a whole."""
    request = parse_one(b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n")
    assert (request.method, request.target, request.path) == ("OPTIONS", "*", "*")


def test_connect_authority_form_is_accepted() -> None:
    """RFC 9112 §3.2.3: CONNECT host:port."""
    request = parse_one(b"CONNECT example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n")
    assert request.target == "example.com:443"
    assert request.path == ""


@pytest.mark.parametrize(
    "target", [b"example.com", b"[::1]", b"example.com:", b"a:b:1"]
)
def test_connect_without_a_port_is_400(target: bytes) -> None:
    """RFC 9112 §3.2.3: authority-form = uri-host ":" port, both required."""
    assert isinstance(
        error(b"CONNECT " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n"), BadRequest
    )


# -- line endings (RFC 9112 §2.2) ----------------------------------------------


def test_empty_lines_before_the_request_line_are_ignored() -> None:
    """RFC 9112 §2.2: a server SHOULD ignore at least one empty line first."""
    requests = parse(b"\r\n\r\n" + get(b"/a") + b"\r\n" + get(b"/b"))
    assert [r.path for r in requests] == ["/a", "/b"]


def test_empty_lines_alone_are_not_a_request_but_start_the_header_deadline() -> None:
    """A client sending an empty line now and then must not keep resetting
    the idle deadline: they put it under the header deadline, but they are
    no head (so a timeout answers nothing), and a close after them is clean."""
    parser = RequestParser()
    parser.feed(b"\r\n\r\n\n")
    assert parser.next_request() is None
    assert parser.mid_request
    assert not parser.head_begun
    parser.feed(b"\r\n")
    assert parser.next_request() is None
    assert parser.mid_request
    parser.feed_eof()
    assert parser.next_request() is None


def test_empty_lines_are_bounded_as_a_head_is() -> None:
    parser = RequestParser(Limits(max_header_bytes=100))
    parser.feed(b"\r\n" * 50)
    assert parser.next_request() is None
    parser.feed(b"\r\n")
    with pytest.raises(BadRequest, match="empty lines"):
        parser.next_request()


def test_head_begun_is_true_only_for_the_bytes_of_a_head() -> None:
    parser = RequestParser()
    assert not parser.head_begun
    parser.feed(b"\r\nGET / HT")
    assert parser.next_request() is None
    assert parser.head_begun
    parser.feed(b"TP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
    assert parser.next_request() is not None
    assert parser.mid_request, "the body is still due"
    assert not parser.head_begun, "what is missing is a body, not a head"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /lf HTTP/1.1\nHost: x\nX-A: 1\n\n",
        b"GET / HTTP/1.1\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
        b"GET / HTTP/1.0\n\n",
        b"GET / HTTP/1.0\r\n\n",
        # The smuggling shape: a CRLF-only reader sees Content-Length as part
        # of the Dummy line, and the body below as a second request.
        b"POST / HTTP/1.1\r\nHost: x\r\nDummy: x\nContent-Length: 23\r\n\r\n"
        b"GET /hidden HTTP/1.1\r\n\r\n",
    ],
)
def test_a_bare_lf_in_the_head_is_400_and_nothing_after_it(head: bytes) -> None:
    """RFC 9112 §2.2 allows accepting a bare LF (MAY); we refuse it: it splits
    requests differently from readers that do not (llhttp, httptools)."""
    data = head + get(b"/next")
    assert isinstance(error(data), BadRequest)
    assert "bare LF" in error(data).detail
    with pytest.raises(BadRequest, match="bare LF"):
        fed_in_pieces(data, 1)


def test_a_bare_lf_head_is_refused_as_soon_as_it_is_complete() -> None:
    """Found at its blank line, not waited on until the header deadline."""
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\nHost: x\n\n")
    with pytest.raises(BadRequest):
        parser.next_request()


# -- keep-alive (RFC 9112 §9.3) ------------------------------------------------


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"HTTP/1.1", [], True),
        (b"HTTP/1.1", [b"close"], False),
        (b"HTTP/1.1", [b"CLOSE"], False),
        (b"HTTP/1.1", [b"keep-alive"], True),
        (b"HTTP/1.1", [b"keep-alive, close"], False),
        (b"HTTP/1.1", [b"Upgrade, Close"], False),
        (b"HTTP/1.1", [b"upgrade"], True),
        (b"HTTP/1.0", [], False),
        (b"HTTP/1.0", [b"keep-alive"], True),
        (b"HTTP/1.0", [b"Keep-Alive"], True),
        (b"HTTP/1.0", [b"keep-alive, close"], False),
        (b"HTTP/1.0", [b"keep-alive", b"close"], False),
        (b"HTTP/1.0", [b"close"], False),
        # Optional whitespace is SP and HTAB only (RFC 9110 §5.6.3): a token
        # with any other byte after it (NBSP, NEL) is another token.
        (b"HTTP/1.1", [b"keep-alive ,\tclose"], False),
        (b"HTTP/1.1", [b"close\xa0"], True),
        (b"HTTP/1.0", [b"keep-alive\x85"], False),
    ],
)
def test_keep_alive_matrix(
    version: bytes, connection: list[bytes], keep_alive: bool
) -> None:
    """RFC 9112 §9.3: 1.1 persists unless close; 1.0 only with keep-alive."""
    lines = b"".join(b"Connection: " + value + b"\r\n" for value in connection)
    assert parse_one(get(b"/", lines, version)).keep_alive is keep_alive


# -- Expect: 100-continue (RFC 9110 §10.1.1) -----------------------------------


def test_expect_continue_with_a_body_is_flagged() -> None:
    request = parse_one(
        b"POST / HTTP/1.1\r\n"
        + HOST
        + b"Expect: 100-Continue\r\nContent-Length: 5\r\n\r\n"
    )
    assert request.expects_continue


def test_expect_continue_without_a_body_is_not_flagged() -> None:
    assert not parse_one(get(b"/", b"Expect: 100-continue\r\n")).expects_continue


# -- end of input ----------------------------------------------------------------


def test_eof_in_the_middle_of_a_head_is_400() -> None:
    caught = error(b"GET / HTTP/1.1\r\nHost: x\r\n", eof=True)
    assert isinstance(caught, BadRequest)


def test_eof_in_the_middle_of_a_body_is_400() -> None:
    parser = RequestParser()
    parser.feed(post(b"hello")[:-2])
    parser.feed_eof()
    assert parser.next_request() is not None
    with pytest.raises(BadRequest):
        parser.next_request()


def test_eof_with_nothing_buffered_is_no_request() -> None:
    assert parse(b"", eof=True) == []


def test_eof_after_complete_requests_hands_them_out() -> None:
    assert [r.path for r in parse(get(b"/a") + get(b"/b"), eof=True)] == ["/a", "/b"]


# -- the properties shells rely on -----------------------------------------------


def test_mid_request_and_body_pending_through_a_request() -> None:
    parser = RequestParser()
    assert not parser.mid_request
    assert not parser.body_pending
    parser.feed(b"\r\n")
    assert parser.mid_request  # empty lines: the header deadline runs
    assert not parser.head_begun  # but they are not a request yet
    parser.feed(b"P")
    assert parser.mid_request
    assert parser.head_begun
    assert not parser.body_pending
    parser.feed(b"OST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na")
    assert parser.next_request() is not None
    assert parser.mid_request
    assert parser.body_pending
    parser.feed(b"bc")
    assert parser.next_request() is None
    assert not parser.mid_request
    assert not parser.body_pending


def test_consumed_only_when_every_byte_belongs_to_a_handed_out_request() -> None:
    """What lets a shell close without reading on first (no reset risk)."""
    parser = RequestParser()
    assert parser.consumed
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert not parser.consumed  # a head in progress
    parser.feed(b"\r\n")
    assert not parser.consumed  # complete, but not handed out yet
    assert parser.next_request() is not None
    assert parser.consumed
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\na")
    assert parser.next_request() is not None
    assert not parser.consumed  # two body bytes still to come
    parser.feed(b"bc")
    assert parser.next_request() is None
    assert parser.consumed
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /b")
    assert parser.next_request() is not None
    assert not parser.consumed  # a pipelined request has begun


def test_a_failed_parser_is_never_consumed() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/9.9\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.next_request()
    assert not parser.consumed


@pytest.mark.parametrize(
    ("data", "method"),
    [
        (b"HEAD / HTTP/1.1\r\n\r\n", "HEAD"),
        (b"GET /a#b HTTP/1.1\r\n" + HOST + b"\r\n", "GET"),
        (b"HEAD / HTTP/1.1\r\n" + fields(101) + b"\r\n", "HEAD"),
        (b"HEAD / HTTP/3.0\r\n\r\n", "HEAD"),  # the request line itself failed
        (b"HEAD /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", "HEAD"),
        (b"GET / HTTP/3.0\r\n\r\n", None),  # not HEAD: the page goes
        (b"HEADER /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", None),
    ],
)
def test_an_error_records_a_head_request_as_such(
    data: bytes, method: str | None
) -> None:
    """So that an error answering HEAD can leave out the body (RFC 9110 §9.3.2),
    even when what is wrong is its request line."""
    assert error(data).method == method


def test_after_an_error_the_parser_stays_failed() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/9.9\r\n\r\n")
    with pytest.raises(VersionNotSupported):
        parser.next_request()
    parser.feed(get(b"/"))
    assert parser.next_request() is None
    assert parser.next_request() is None
    assert not parser.mid_request
    assert not parser.body_pending


@pytest.mark.parametrize(
    "target",
    [b"/" + b"a" * 4000 + b"\x01", b"/" + b"%41a" * 1000 + b"%4", b"/?" + b"a" * 4000],
)
def test_a_long_target_that_fails_late_is_refused_at_once(target: bytes) -> None:
    """The one-pass head pattern must not backtrack through the ways of
    cutting a long run of path characters: that would take forever here."""
    parser = RequestParser()
    parser.feed(get(target, extra=b"X: " + b"b" * 4000 + b"\x01\r\n"))
    with pytest.raises(BadRequest):
        parser.next_request()
