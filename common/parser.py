"""An incremental HTTP/1.1 request parser: bytes in, requests out, no I/O.

Feed it whatever arrived — one byte, half a header, ten pipelined requests —
and ask for the next complete request. It never blocks and never touches a
socket, so the thread-pool shell and the event-loop shell drive it the same
way, and a worker is never parked on a half-received request.

A request is handed out as soon as its head is complete; its body (if any) is
then read and discarded from the bytes that follow, so the next pipelined
request starts exactly where this one ends (RFC 9112 §6.3). Nothing here
imports socket, threading, asyncio or time.

Each head is read line by line, rule by rule (the plain path). A common head
— a known method, an origin-form target, well-formed fields — is first tried
in one pass (``_COMMON_HEAD``): one regex match in C instead of a Python call
per line, which took the cost of a head never seen before from 12 to 6 µs.
Whatever that pass does not accept, errors included, the plain path reads;
``one_pass=False`` turns the first pass off, and the tests hold the two to
the same answers.
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple
from urllib.parse import unquote

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

# RFC 9110 §9: the methods this server recognises. Anything else that is a
# valid token is answered 501; these are answered by the routes (405 where
# a route does not allow them).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_LONGEST_METHOD = max(map(len, KNOWN_METHODS))

# The grammar, in one place (RFC 9110 §5.6.2, §5.5; RFC 9112 §3, §5; RFC 3986).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # = _TCHARS, below
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_PCHARS = rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})"
_ORIGIN_FORM = re.compile(rb"/" + _PCHARS + rb"*(?:\?(?:" + _PCHARS + rb"|\?)*)?")
_ABSOLUTE_FORM = re.compile(
    rb"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)((?:/" + _PCHARS + rb"*)?)"
    rb"((?:\?(?:" + _PCHARS + rb"|\?)*)?)"
)
_HOST_NAME = (  # an IP literal, or a reg-name (RFC 3986 §3.2.2)
    rb"(?:\[[0-9A-Fa-f:.]+\]"
    rb"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)"
)
_HOST = re.compile(_HOST_NAME + rb"(?::[0-9]*)?")
_HOST_TEXT = re.compile(_HOST.pattern.decode("latin-1"))  # the same, for a str
# RFC 9112 §3.2.3: CONNECT's authority-form is host ":" port, the port required.
_AUTHORITY_FORM = re.compile(_HOST_NAME + rb":[0-9]+")
_DIGITS = re.compile(rb"[0-9]+")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_NOT_CRLF = re.compile(rb"[^\r\n]")
# Printable, with no quote or backslash: safe inside a quoted log field.
_LOGGABLE = re.compile(rb"[\x21\x23-\x5b\x5d-\x7e]+")
_TCHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = (  # RFC 9110 §5.6.4: qdtext and quoted-pair, obs-text included
    rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
)
# RFC 9112 §7.1.1: chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ).
_CHUNK_EXT = (
    rb"[ \t]*;[ \t]*" + _TCHARS
    + rb"(?:[ \t]*=[ \t]*(?:" + _TCHARS + rb"|" + _QUOTED_STRING + rb"))?"
)  # fmt: skip
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:" + _CHUNK_EXT + rb")*")

# The common head in one pass: a known method (not CONNECT) with an
# origin-form target, HTTP/1.0 or 1.1, and well-formed field lines, every
# line ending in CRLF. One fullmatch in C checks it whole, on the head decoded
# as latin-1 (one byte, one character). A head it does not match — every
# error included — goes through the line-by-line parse, which names the rule
# broken: the plain path, which reads like the RFC.
_PATH_RUN = r"[A-Za-z0-9\-._~!$&'()*+,;=:@/?]*"
_COMMON_HEAD = re.compile(
    "(" + "|".join(sorted(KNOWN_METHODS - {"CONNECT"})) + ") "
    # origin-form (_ORIGIN_FORM): runs of path and query characters between
    # escapes, unrolled, so that a failed match cannot backtrack through the
    # ways of cutting one run into pieces
    "(/" + _PATH_RUN + "(?:%[0-9A-Fa-f]{2}" + _PATH_RUN + ")*)"
    r" HTTP/1\.([01])\r\n"
    # field-name ":" field-value with its whitespace (_TOKEN, _FIELD_VALUE)
    "((?:" + _TCHARS.decode() + r":[\t\x20-\x7e\x80-\xff]*\r\n)*)"
    r"\r\n"
)


# The fields whose values change how a request is read or answered.
_CONSULTED_FIELDS = frozenset(
    {"host", "connection", "expect", "transfer-encoding", "content-length"}
)


class HTTPVersion(enum.StrEnum):
    """The two versions this server speaks (anything else is 505). A
    ``StrEnum``: a member formats as its text without a look-up of ``value``."""

    HTTP_1_0 = "HTTP/1.0"
    HTTP_1_1 = "HTTP/1.1"


class Request(NamedTuple):
    """One parsed request head. Header names are lower-case, values stripped.

    A named tuple rather than a frozen dataclass: as immutable (a server's
    connections share the cached ones), and made in half the time, since a
    frozen dataclass sets each field through ``object.__setattr__``; every
    request head never seen before makes one.
    """

    method: str
    target: str
    path: str
    version: HTTPVersion
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool
    expects_continue: bool = False
    has_body: bool = False

    @property
    def request_line(self) -> str:
        return f"{self.method} {self.target} {self.version}"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class HeadCache:
    """Parsed request heads by their exact bytes, shared by one server's parsers.

    Real clients (browsers, wrk, load balancers) send the same head bytes
    again and again, so a hit turns the whole parse into a dict look-up. The
    key is the head *with* the blank line that ends it: a read that holds
    exactly one bodiless request, the usual case, is then a key itself, and
    :meth:`RequestParser.feed` recognises it without buffering or searching
    it (a third of the parser's time on the hello page). Only
    heads that parsed without error *and* announce no body are kept: parsing
    such a head has no effect on the parser beyond returning the immutable
    :class:`Request`, so handing out the cached one is indistinguishable from
    parsing again. The result depends on the limits too, so a cache is bound
    to one :class:`~common.limits.Limits` and a parser with other limits does
    not use it. Bounded: when full it is emptied and refills with what is
    sent now (clearing is one atomic step, safe for threads sharing it).
    """

    __slots__ = ("_heads", "limits", "size")

    def __init__(self, limits: Limits | None = None, size: int = 256) -> None:
        self.limits = limits or Limits()
        self.size = size
        self._heads: dict[bytes, Request] = {}

    def __len__(self) -> int:
        return len(self._heads)

    def get(self, head: bytes) -> Request | None:
        """The request for ``head`` (ending in its blank line), if remembered."""
        return self._heads.get(head)

    def put(self, head: bytes, request: Request) -> None:
        """Remember a head (blank line included) that parsed to ``request``.

        Kept only if the request is bodiless.
        """
        if request.has_body:
            return
        heads = self._heads
        if len(heads) >= self.size:
            heads.clear()
        heads[head] = request


class _State(enum.Enum):
    HEAD = enum.auto()  # waiting for (the rest of) a request head
    BODY = enum.auto()  # discarding a Content-Length body
    CHUNK_SIZE = enum.auto()  # waiting for a chunk-size line
    CHUNK_DATA = enum.auto()  # discarding chunk data
    CHUNK_END = enum.auto()  # waiting for the CRLF after chunk data
    TRAILERS = enum.auto()  # reading trailer lines until the blank one
    FAILED = enum.auto()  # a protocol error was raised; nothing more is parsed


class RequestParser:
    """Turns a byte stream from one connection into requests, in order.

    ``feed`` appends bytes, ``feed_eof`` records that the client will send
    no more, and ``next_request`` returns the next complete request head,
    ``None`` when more bytes are needed, or raises :class:`ProtocolError`.
    After an error the parser is finished: the connection must close.
    """

    # One per connection: slots keep it small and its attributes quick.
    __slots__ = (
        "_body_seen",
        "_buffer",
        "_cache",
        "_deferred",
        "_eof",
        "_host",
        "_limits",
        "_line_scanned",
        "_one_pass",
        "_ready",
        "_remaining",
        "_scanned",
        "_state",
        "_trailer_bytes",
    )

    def __init__(
        self,
        limits: Limits | None = None,
        cache: HeadCache | None = None,
        *,
        one_pass: bool = True,
    ) -> None:
        self._limits = limits or Limits()
        # False: every head goes through the line-by-line parse, the plain
        # path the one-pass reading of common heads must agree with.
        self._one_pass = one_pass
        # Only a cache filled under the same limits gives the same answers.
        # (``is`` first: comparing two Limits field by field costs a Python
        # call, and every connection of a server shares one Limits object.)
        limits = self._limits
        same = cache is not None and (cache.limits is limits or cache.limits == limits)
        self._cache = cache if same else None
        self._buffer = bytearray()
        self._state = _State.HEAD
        self._remaining = 0  # body or chunk bytes still to discard
        self._body_seen = 0  # chunked body bytes so far, against max_body_bytes
        self._trailer_bytes = 0
        self._scanned = 0  # head bytes already searched for the blank line
        self._line_scanned = 0  # the same, for a chunk-size or trailer line
        self._eof = False
        self._host = ""  # the last Host value found valid: checked once a connection
        self._deferred: ProtocolError | None = None
        # A request recognised whole by feed(), not yet handed out.
        self._ready: Request | None = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the client."""
        if self._buffer or self._ready is not None or self._state is not _State.HEAD:
            if self._state is not _State.FAILED:
                self._buffer += data
            return
        # Between requests, with nothing buffered: if these bytes are exactly
        # one remembered head, parsing them would return that request and
        # leave the parser as it is now, so skip straight to the answer.
        cache = self._cache
        if cache is not None:
            self._ready = cache.get(data)
            if self._ready is not None:
                return
        # The same for exactly one common head never seen before: parsed
        # where it lies, with no copy into the buffer and no search in it.
        if self._one_pass and data.endswith(b"\r\n\r\n"):
            self._ready = self._common_request(data.decode("latin-1"))
            if self._ready is not None:
                if cache is not None:
                    cache.put(data, self._ready)  # kept only if bodiless
                return
        self._buffer += data

    def feed_eof(self) -> None:
        """The client closed its side; what is buffered is all there will be."""
        self._eof = True

    @property
    def mid_request(self) -> bool:
        """True while part of a request (head or body) has arrived but not all,
        or empty lines that may precede one.

        Shells use this to choose a deadline: the header deadline while it is
        True, the idle keep-alive deadline while it is False. Empty lines
        count, so that a client sending one now and then cannot hold a
        connection open past the header deadline.
        """
        if self._state is _State.HEAD:
            return bool(self._buffer)
        return self._state is not _State.FAILED

    @property
    def head_method(self) -> str | None:
        """``HEAD`` if the head begun so far is a HEAD request's (its error
        answers then carry no body), else None."""
        return _head_method(self._buffer.lstrip(b"\r\n"))

    @property
    def head_begun(self) -> bool:
        """True while part of a request head (more than empty lines) has arrived."""
        # A search, not lstrip(): no copy of a large buffer on every call.
        buf = self._buffer
        return (
            self._state is _State.HEAD
            and bool(buf)
            and _NOT_CRLF.search(buf) is not None
        )

    @property
    def consumed(self) -> bool:
        """True when every byte received belongs to a request already handed out.

        A shell closing the connection after such a request need not read
        on first to avoid a reset: unless the client broke the rules by
        sending after ``Connection: close``, nothing more is on its way.
        """
        return (
            self._state is _State.HEAD
            and not self._buffer
            and self._ready is None
            and self._deferred is None
        )

    @property
    def body_pending(self) -> bool:
        """True while the body of the last request is still being discarded."""
        return self._state not in (_State.HEAD, _State.FAILED)

    def next_request(self) -> Request | None:
        """The next complete request, or None if more bytes are needed."""
        ready = self._ready
        if ready is not None:  # fed whole (see feed); it precedes the buffer
            self._ready = None
            return ready
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error
        state = self._state
        if state is _State.FAILED or (state is _State.HEAD and not self._buffer):
            return None  # the usual answer once a read's requests are out
        try:
            if self._state is not _State.HEAD:
                try:
                    self._discard_body()
                    if self.body_pending:
                        self._check_eof("request body")
                        return None
                except ProtocolError as error:
                    error.after_response = True  # its request was handed out
                    raise
            request = self._parse_head()
        except ProtocolError:
            self._fail()
            raise
        if request is not None and self._state is not _State.HEAD:
            # Swallow whatever of the body is already here, so that
            # body_pending tells the truth when the reply is chosen. A framing
            # error in it belongs to the next call: this request is still good.
            try:
                self._discard_body()
            except ProtocolError as error:
                self._fail()
                error.after_response = True  # raised once this request is answered
                self._deferred = error
        return request

    def _fail(self) -> None:
        self._state = _State.FAILED
        self._buffer.clear()

    def _check_eof(self, what: str) -> None:
        """More bytes are needed: fine, unless the client has closed."""
        if self._eof:
            raise BadRequest(f"connection closed in the middle of the {what}")

    # -- the head ------------------------------------------------------------

    def _parse_head(self) -> Request | None:
        buf = self._buffer
        # RFC 9112 §2.2: a server SHOULD ignore empty lines before a request line.
        if buf.startswith((b"\r", b"\n")):
            blank = len(buf) - len(buf.lstrip(b"\r\n"))
            if blank > self._limits.max_header_bytes:  # bounded as a head is
                raise BadRequest("too many empty lines before the request line")
            if blank == len(buf):  # only empty lines: kept, for the header deadline
                return None
            del buf[:blank]
        head_end, body_start = self._find_blank_line(buf, self._scanned)
        if head_end < 0:
            # Resume the search here next time (a terminator is at most 3
            # bytes), so a head fed byte by byte costs linear, not quadratic,
            # time: a slowloris client must not be able to burn the CPU.
            self._scanned = max(0, len(buf) - 3)
            try:
                self._check_incomplete_head(buf)
            except ProtocolError as error:
                error.method = _head_method(buf)
                raise
            self._check_eof("request head")
            return None
        self._scanned = 0
        cache = self._cache
        key = bytes(buf[:body_start])  # the head and its blank line
        if cache is None:
            del buf[:body_start]
            return self._parse_complete_head(key, head_end)
        request = cache.get(key)  # a head remembered was checked when first seen
        if request is None:
            del buf[:body_start]
            request = self._parse_complete_head(key, head_end)
            cache.put(key, request)  # kept only if bodiless
        else:
            del buf[:body_start]
        return request

    @staticmethod
    def _find_blank_line(buf: bytearray, start: int = 0) -> tuple[int, int]:
        """Where the head ends: ``(end of head, start of body)``, or ``(-1, -1)``.

        The head ends at the *first* empty line, found whether lines end in
        CRLF or in a bare LF, so that a head with a bare LF is refused as soon
        as it is complete (:func:`_refuse_bare_lf`) rather than waited on.
        ``\r\n\r\n`` contains ``\n\r\n``, so two patterns cover every mix;
        the head then may end in a CR, which the line parsing drops.
        """
        # One regex pass, not two find() calls: with CRLF requests pipelined,
        # find(b"\n\n") never matches and would rescan the whole buffer for
        # every request, making a long pipeline quadratic.
        match = _BLANK_LINE.search(buf, start)
        return (match.start(), match.end()) if match else (-1, -1)

    def _check_incomplete_head(self, buf: bytearray) -> None:
        """Refuse a head that is already too long before it is even complete.

        Each bound is measured never above what :meth:`_parse_complete_head`
        will measure once the head is complete: a line terminator that has
        only half arrived at the end of the buffer (a CR, or CRLF CR) is not
        counted. So whether a head is refused never depends on how its bytes
        were split, only on the bytes.
        """
        limits = self._limits
        newline = buf.find(b"\n")
        if newline < 0:
            line_length = len(buf) - (1 if buf.endswith(b"\r") else 0)
        else:
            line_length = newline - (1 if buf[newline - 1 : newline] == b"\r" else 0)
        if line_length > limits.max_request_line:
            raise _line_too_long(buf, limits.max_request_line)
        if newline < 0:
            return
        section = len(buf) - newline - 1
        tail = bytes(buf[len(buf) - min(section, 3) :])
        section -= len(tail) - len(tail.rstrip(b"\r\n"))
        if section > limits.max_header_bytes:
            raise HeaderFieldsTooLarge(
                f"header section larger than {limits.max_header_bytes} bytes"
            )

    def _parse_complete_head(self, key: bytes, head_end: int) -> Request:
        """``key``: the head and its blank line, which starts at ``head_end``.

        The size limits first, as :meth:`_check_incomplete_head` applies
        them, so that the status never depends on how the bytes were split.
        """
        if self._one_pass:
            request = self._common_request(key.decode("latin-1"))
            if request is not None:
                return request
        limits = self._limits
        head = key[:head_end]
        request_line, _, header_block = head.partition(b"\n")
        request_line = request_line.removesuffix(b"\r")
        try:
            if len(request_line) > limits.max_request_line:
                raise _line_too_long(request_line, limits.max_request_line)
            # The header section: its field lines and the terminators between
            # them, not the one ending the last line (the head may end in its
            # CR) nor the blank line. The CR stays for _parse_fields, which
            # drops one per line, so a bare CR before the last line's CRLF is
            # still refused.
            if len(header_block.removesuffix(b"\r")) > limits.max_header_bytes:
                raise HeaderFieldsTooLarge(
                    f"header section larger than {limits.max_header_bytes} bytes"
                )
            _refuse_bare_lf(key, len(key))
            method, target, version = _parse_request_line(request_line)
        except ProtocolError as error:
            error.method = _head_method(key)
            raise
        try:
            headers = _parse_fields(header_block, limits.max_header_count)
            path = _route_path(method, target)
            return self._build_request(
                method, target.decode("ascii"), path, version, headers
            )
        except ProtocolError as error:
            error.method = method
            if _LOGGABLE.fullmatch(target):
                error.request_line = f"{method} {target.decode()} {version}"
            raise

    def _common_request(self, head: str) -> Request | None:
        """The request for ``head`` (decoded as latin-1, blank line included)
        if it is a common one (``_COMMON_HEAD``) within the limits and the
        rules of meaning; otherwise None, and the line-by-line parse says
        which rule it broke, as it would for any head."""
        common = _COMMON_HEAD.fullmatch(head)
        if common is None:
            return None
        method, target, minor, block = common.group(1, 2, 3, 4)
        limits = self._limits
        # The sizes _parse_complete_head measures: the request line without
        # its CRLF, the field lines without the last one's CRLF.
        if common.start(4) - 2 > limits.max_request_line:
            return None
        if len(block) - 2 > limits.max_header_bytes:
            return None
        fields = []
        if block:
            for line in block[:-2].split("\r\n"):
                name, _, value = line.partition(":")
                fields.append((name.lower(), value.strip(" \t")))
            if len(fields) > limits.max_header_count:
                return None
        path = target.partition("?")[0]
        try:
            return self._build_request(
                method,
                target,
                unquote(path) if "%" in path else path,
                HTTPVersion.HTTP_1_1 if minor == "1" else HTTPVersion.HTTP_1_0,
                tuple(fields),
            )
        except ProtocolError:
            return None  # raised again, with its request line, by the plain path

    def _build_request(
        self,
        method: str,
        target: str,
        path: str,
        version: HTTPVersion,
        headers: tuple[tuple[str, str], ...],
    ) -> Request:
        """The request, once its syntax is checked: the rules of meaning
        (Host, Connection, Expect, the body's framing) on the fields they name."""
        named: dict[str, list[str]] = {}  # most heads name only Host
        for name, value in headers:
            if name in _CONSULTED_FIELDS:
                named.setdefault(name, []).append(value)
        hosts = named.get("host", [])
        if len(hosts) > 1:
            raise BadRequest("more than one Host header")
        if not hosts and version is HTTPVersion.HTTP_1_1:
            raise BadRequest("HTTP/1.1 request without a Host header")
        if hosts and hosts[0] != self._host:
            if not _HOST_TEXT.fullmatch(hosts[0]):
                raise BadRequest("invalid Host header")
            self._host = hosts[0]
        connection = named.get("connection")
        tokens = _connection_tokens(connection) if connection else set()
        if version is HTTPVersion.HTTP_1_1:
            keep_alive = "close" not in tokens
        else:
            keep_alive = "keep-alive" in tokens and "close" not in tokens
        expect = named.get("expect")
        expects_continue = expect is not None and any(
            value.lower() == "100-continue" for value in expect
        )
        has_body = ("transfer-encoding" in named or "content-length" in named) and (
            self._start_body(
                version,
                named.get("transfer-encoding", []),
                named.get("content-length", []),
            )
        )
        # By position: keywords double what a named tuple costs to make.
        return Request(
            method,
            target,
            path,
            version,
            headers,
            keep_alive,
            expects_continue and has_body,  # expects_continue
            has_body,
        )

    # -- the body (RFC 9112 §6) ---------------------------------------------

    def _start_body(
        self, version: HTTPVersion, codings_values: list[str], lengths: list[str]
    ) -> bool:
        """Decide how the body is framed from the values of Transfer-Encoding
        and Content-Length; return whether there is one."""
        if codings_values:
            if version is HTTPVersion.HTTP_1_0:
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            if lengths:
                raise BadRequest("both Transfer-Encoding and Content-Length")
            # RFC 9110 §5.6.1: a recipient ignores empty list elements.
            codings = [
                coding
                for value in codings_values
                for element in value.split(",")
                if (coding := element.strip(" \t").lower())
            ]
            if not codings or codings[-1] != "chunked":
                raise BadRequest("Transfer-Encoding whose final coding is not chunked")
            if codings.count("chunked") > 1:
                raise BadRequest("chunked applied more than once")
            unknown = [c for c in codings if c != "chunked"]
            if unknown:
                raise TransferCodingNotImplemented(
                    f"transfer coding {unknown[0]!r} is not supported"
                )
            self._state = _State.CHUNK_SIZE
            self._body_seen = 0
            return True
        if not lengths:
            return False
        if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0].encode("latin-1")):
            raise BadRequest("invalid Content-Length")
        # Never int() an unbounded digit string: past 4300 digits Python
        # raises ValueError, and any length with more digits than the limit
        # is too large anyway (leading zeros do not count).
        digits = lengths[0].lstrip("0") or "0"
        max_digits = len(str(self._limits.max_body_bytes))
        length = int(digits) if len(digits) <= max_digits else -1
        if length < 0 or length > self._limits.max_body_bytes:
            raise ContentTooLarge(
                f"request body larger than {self._limits.max_body_bytes} bytes"
            )
        if length == 0:
            return False
        self._state = _State.BODY
        self._remaining = length
        return True

    def _discard_body(self) -> None:
        """Consume as much of the current body as is buffered."""
        buf = self._buffer
        while buf and self._state is not _State.HEAD:
            state = self._state
            if state is _State.BODY or state is _State.CHUNK_DATA:
                taken = min(self._remaining, len(buf))
                del buf[:taken]
                self._remaining -= taken
                if self._remaining == 0:
                    self._state = (
                        _State.HEAD if state is _State.BODY else _State.CHUNK_END
                    )
            elif state is _State.CHUNK_END:
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise BadRequest("chunk data not followed by CRLF")
                del buf[:2]
                self._state = _State.CHUNK_SIZE
            elif state is _State.CHUNK_SIZE:
                line = self._take_line(self._limits.max_chunk_line, "chunk-size line")
                if line is None:
                    return
                self._start_chunk(line)
            else:  # TRAILERS
                line = self._take_line(self._limits.max_header_bytes, "trailer")
                if line is None:
                    return
                self._trailer_line(line)

    def _take_line(self, limit: int, what: str) -> bytes | None:
        """A CRLF-terminated line from the buffer (bare LF refused in bodies)."""
        buf = self._buffer
        end = buf.find(b"\r\n", self._line_scanned)
        if end < 0:
            # Linear time when fed byte by byte, as for the head.
            self._line_scanned = max(0, len(buf) - 1)
            # A CR at the end may be the first half of the CRLF: not counted.
            if len(buf) - buf.endswith(b"\r") > limit:
                raise BadRequest(f"{what} longer than {limit} bytes")
            return None
        self._line_scanned = 0
        if end > limit:
            raise BadRequest(f"{what} longer than {limit} bytes")
        line = bytes(buf[:end])
        del buf[: end + 2]
        if b"\n" in line or b"\r" in line:
            raise BadRequest(f"bare CR or LF in a {what}")
        return line

    def _start_chunk(self, line: bytes) -> None:
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise BadRequest("invalid chunk-size line")
        size = int(match.group(1), 16)
        self._body_seen += size
        if self._body_seen > self._limits.max_body_bytes:
            raise ContentTooLarge(
                f"request body larger than {self._limits.max_body_bytes} bytes"
            )
        if size == 0:
            self._state = _State.TRAILERS
            self._trailer_bytes = 0
        else:
            self._state = _State.CHUNK_DATA
            self._remaining = size

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            self._state = _State.HEAD
            return
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > self._limits.max_header_bytes:
            raise HeaderFieldsTooLarge("trailer section too large")
        _parse_field(line)


# -- helpers: pure functions of bytes -----------------------------------------


def _parse_request_line(line: bytes) -> tuple[str, bytes, HTTPVersion]:
    """``method SP request-target SP HTTP-version`` (RFC 9112 §3), strictly."""
    if b"\r" in line:
        raise BadRequest("bare CR in the request line")
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest("malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest("invalid method")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise BadRequest("malformed HTTP version")
    if version == b"HTTP/1.1":
        parsed = HTTPVersion.HTTP_1_1
    elif version == b"HTTP/1.0":
        parsed = HTTPVersion.HTTP_1_0
    else:
        raise VersionNotSupported(f"{version.decode('ascii')} is not supported")
    name = method.decode("ascii")
    if name not in KNOWN_METHODS:
        raise MethodNotImplemented(f"method {name} is not implemented")
    return name, target, parsed


def _head_method(data: bytes | bytearray) -> str | None:
    """``HEAD`` if ``data`` begins a HEAD request, whatever is wrong with the
    rest: a HEAD client reads no body, error pages included (RFC 9110 §9.3.2)."""
    return "HEAD" if data.startswith(b"HEAD ") else None


def _line_too_long(line: bytes | bytearray, limit: int) -> ProtocolError:
    """A request line over the limit: 414 for its target, or 501 when its
    method is already longer than any we know (RFC 9112 §3 SHOULD)."""
    if line.find(b" ", 0, _LONGEST_METHOD + 1) < 0:
        return MethodNotImplemented("method longer than any this server implements")
    return URITooLong(f"request line longer than {limit} bytes")


def _refuse_bare_lf(head: bytes | bytearray, end: int) -> None:
    """A head's lines end in CRLF, every one (400 otherwise).

    RFC 9112 §2.2 lets a recipient accept a bare LF, but a reader that does
    splits requests where a CRLF-only intermediary does not: a header line
    ending in LF alone could hide a ``Content-Length`` from one of the two,
    and with it a request smuggled in a body. llhttp refuses it; so do we.
    """
    # Two counts, not a look-behind regex: C loops, a tenth of the cost.
    if head.count(b"\n", 0, end) != head.count(b"\r\n", 0, end):
        raise BadRequest("a line of the request head ends in a bare LF, not CRLF")


def _parse_fields(block: bytes, max_count: int) -> tuple[tuple[str, str], ...]:
    """Header field lines (RFC 9112 §5); their CRLFs were checked already."""
    if not block:
        return ()
    lines = block.split(b"\n")
    if len(lines) > max_count:
        raise HeaderFieldsTooLarge(f"more than {max_count} header fields")
    return tuple(_parse_field(line.removesuffix(b"\r")) for line in lines)


def _parse_field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise BadRequest("obsolete line folding in a header")
    name, colon, value = line.partition(b":")
    if not colon:
        raise BadRequest("header line without a colon")
    if not _TOKEN.fullmatch(name):
        # Also catches whitespace between the name and the colon (§5.1).
        raise BadRequest("invalid header field name")
    value = value.strip(b" \t")
    if not _FIELD_VALUE.fullmatch(value):
        raise BadRequest("control character in a header value")
    return name.decode("ascii").lower(), value.decode("latin-1")


def _connection_tokens(values: list[str]) -> set[str]:
    """The options of the Connection header fields with ``values``."""
    return {
        token.strip(" \t").lower()  # OWS is SP and HTAB, not Unicode space
        for value in values
        for token in value.split(",")
    }


def _route_path(method: str, target: bytes) -> str:
    """The path to route on, from any of the four target forms (RFC 9112 §3.2)."""
    if target[:1] == b"/":
        if not _ORIGIN_FORM.fullmatch(target):
            raise BadRequest("invalid request target")
        path = target.partition(b"?")[0]
    elif target == b"*":
        if method != "OPTIONS":
            raise BadRequest("asterisk-form is only for OPTIONS")
        return "*"
    elif method == "CONNECT":
        if not _AUTHORITY_FORM.fullmatch(target):
            raise BadRequest("CONNECT needs an authority-form target")
        return ""
    else:
        match = _ABSOLUTE_FORM.fullmatch(target)
        if match is None:
            raise BadRequest("invalid request target")
        scheme, authority, path = match.group(1, 2, 3)
        if scheme.lower() not in (b"http", b"https"):
            raise BadRequest("absolute-form target must be http or https")
        if not authority or not _HOST.fullmatch(authority):
            raise BadRequest("invalid authority in the request target")
        path = path or b"/"
    text = path.decode("ascii")
    return unquote(text) if "%" in text else text
