"""One HTTP/1.1 connection, sans I/O: bytes in, exchanges out.

The shells own the socket and the clock; this owns everything else about a
connection — parsing, routing, keep-alive, what to do after an error — so the
two editions behave the same by construction. A shell's loop is::

    conn.receive(data)                  # b"" means the client closed
    while (exchange := conn.next_exchange()) is not None:
        wait exchange.reply.delay       # time.sleep or asyncio.sleep
        send exchange.render(responder)
    if conn.closed: close the socket

One response per request: a framing error in the body of a request already
answered (its reply went out as soon as its head was read) ends the
connection with no second response, which a client would take for the
answer to its next request.
"""

from __future__ import annotations

from typing import NamedTuple

from common.errors import ProtocolError, RequestTimeout
from common.limits import Limits
from common.parser import HeadCache, HTTPVersion, Request, RequestParser
from common.response import ConnectionHeader, Responder
from common.routes import Reply, Router, error_reply


class Exchange(NamedTuple):
    """One request (or one failure) and the reply chosen for it.

    Immutable, since the server's connections share remembered ones; a named
    tuple, as :class:`~common.parser.Request` is, for its cost.
    """

    request_line: str
    """As received, for the access log; ``-`` when it could not be parsed."""
    reply: Reply
    keep_alive: bool
    """False when the connection must close after this reply."""
    head: bool = False
    version: HTTPVersion = HTTPVersion.HTTP_1_1

    def render(self, responder: Responder, *, closing: bool = False) -> bytes:
        """The bytes to send; ``closing`` forces ``Connection: close``
        (the server is shutting down or recycling)."""
        if closing or not self.keep_alive:
            header = ConnectionHeader.CLOSE
        elif self.version is HTTPVersion.HTTP_1_0:
            header = ConnectionHeader.KEEP_ALIVE
        else:
            header = ConnectionHeader.NONE
        return responder.render(self.reply, header, head=self.head)

    @classmethod
    def failure(cls, error: ProtocolError) -> Exchange:
        """The closing exchange for ``error``; bodiless if it answers a HEAD."""
        return cls(
            request_line=error.request_line or "-",
            reply=error_reply(error),
            keep_alive=False,
            head=error.method == "HEAD",
        )


class ExchangeCache:
    """One server's memory of request heads and the exchanges chosen for them.

    Owned by the server (no module state) and shared by its connections. A
    head seen before is a dict look-up (:class:`~common.parser.HeadCache`),
    and since that hands out the very same :class:`Request` object, the
    exchange for it — a pure function of a bodiless request and the router —
    is found by the request's identity. Bound to one router and one set of
    limits; bounded in size (emptied when full).
    """

    __slots__ = ("_exchanges", "heads", "router", "size")

    def __init__(
        self, router: Router, limits: Limits | None = None, size: int = 256
    ) -> None:
        self.router = router
        self.size = size
        self.heads = HeadCache(limits, size)
        # id(request) -> (request, exchange): holding the request keeps its id
        # from being reused by another object while the entry lives.
        self._exchanges: dict[int, tuple[Request, Exchange]] = {}

    def exchange(self, request: Request) -> Exchange | None:
        entry = self._exchanges.get(id(request))
        if entry is not None and entry[0] is request:
            return entry[1]
        return None

    def remember(self, request: Request, exchange: Exchange) -> None:
        exchanges = self._exchanges
        if len(exchanges) >= self.size:
            exchanges.clear()
        exchanges[id(request)] = (request, exchange)


class HttpConnection:
    """The protocol state of one client connection."""

    __slots__ = ("_cache", "_parser", "_router", "closed")

    def __init__(
        self,
        router: Router,
        limits: Limits | None = None,
        cache: ExchangeCache | None = None,
    ) -> None:
        self._router = router
        if cache is not None and cache.router is not router:
            cache = None  # another router's exchanges are not ours to reuse
        self._cache = cache
        self._parser = RequestParser(limits, None if cache is None else cache.heads)
        self.closed = False
        """True once the connection must close after the replies handed out."""

    def receive(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        if data:
            self._parser.feed(data)
        else:
            self._parser.feed_eof()

    @property
    def mid_request(self) -> bool:
        """Part of a request has arrived: the header deadline applies."""
        return self._parser.mid_request

    def time_out(self) -> Exchange | None:
        """The deadline for the rest of a request has passed: the connection
        ends. Its last word is a 408 if a request head had begun; None — no
        response — if what is missing is the body of a request already
        answered (one response per request), or nothing but empty lines came."""
        self.closed = True
        if not self._parser.head_begun:
            return None
        error = RequestTimeout()
        error.method = self._parser.head_method
        return Exchange.failure(error)

    @property
    def consumed(self) -> bool:
        """Every byte received has been answered (see ``RequestParser.consumed``)."""
        return self._parser.consumed

    def next_exchange(self) -> Exchange | None:
        """The next request's exchange, or None until more bytes arrive."""
        if self.closed:
            return None
        try:
            request = self._parser.next_request()
        except ProtocolError as error:
            if error.after_response:  # its request has had its response
                self.closed = True
                return None
            return self.fail(error)
        if request is None:
            return None
        cache = self._cache
        if cache is not None and not request.has_body:
            # Bodiless: the exchange depends on the request and router only.
            known = cache.exchange(request)
            if known is not None:
                if not known.keep_alive:
                    self.closed = True
                return known
        # A client that sent Expect: 100-continue may be holding its body back
        # until we answer (RFC 9110 §10.1.1); since we answer at once without
        # reading it, we must close rather than misread the body as a request.
        keep_alive = request.keep_alive and not (
            request.expects_continue and self._parser.body_pending
        )
        if not keep_alive:
            self.closed = True
        exchange = Exchange(  # by position, as Request is made
            request.request_line,
            self._router.resolve(request),
            keep_alive,
            request.method == "HEAD",  # head
            request.version,
        )
        if cache is not None and not request.has_body:
            cache.remember(request, exchange)
        return exchange

    def fail(self, error: ProtocolError) -> Exchange:
        """End the connection with ``error``'s response (timeouts, overload)."""
        self.closed = True
        return Exchange.failure(error)
