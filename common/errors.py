"""Every way a request can fail, each carrying the HTTP status that answers it.

A shell never decides a status code: it catches :class:`ProtocolError`, and the
exception already knows what to say. After any of these the connection closes,
because once framing is in doubt nothing later on the same connection can be
trusted (RFC 9112 §9.6 lets a server close after an error response).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar


class ProtocolError(Exception):
    """A request that cannot be served, and the status that says why."""

    status: ClassVar[HTTPStatus] = HTTPStatus.BAD_REQUEST

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.method: str | None = None
        """The failed request's method, when its request line was valid.

        The parser sets it so that an error answering a HEAD request carries
        no body (RFC 9110 §9.3.2): a HEAD client does not read one.
        """
        self.request_line: str | None = None
        """The failed request's line, for the access log, when it arrived
        whole and printable (the parser sets it)."""
        self.after_response = False
        """Found in the body of a request already handed out, and so answered:
        it ends the connection with no response of its own (one per request)."""

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers this error's response needs beyond the usual set."""
        return ()


class BadRequest(ProtocolError):
    """Malformed syntax or framing (RFC 9112 §2.2, §3, §5, §6.3): 400."""

    status = HTTPStatus.BAD_REQUEST


class RequestTimeout(ProtocolError):
    """The request head did not arrive within the header deadline: 408."""

    status = HTTPStatus.REQUEST_TIMEOUT

    def __init__(self, detail: str = "The request did not arrive in time.") -> None:
        super().__init__(detail)


class ContentTooLarge(ProtocolError):
    """A request body longer than we are willing to read and discard: 413."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class URITooLong(ProtocolError):
    """The request line is longer than the limit (RFC 9112 §3): 414."""

    status = HTTPStatus.REQUEST_URI_TOO_LONG


class HeaderFieldsTooLarge(ProtocolError):
    """Too many header fields, or too many bytes of them (RFC 6585 §5): 431."""

    status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE


class MethodNotImplemented(ProtocolError):
    """A method this server does not know at all (RFC 9110 §9.1): 501."""

    status = HTTPStatus.NOT_IMPLEMENTED


class TransferCodingNotImplemented(ProtocolError):
    """A transfer coding other than chunked (RFC 9112 §6.1): 501."""

    status = HTTPStatus.NOT_IMPLEMENTED


class VersionNotSupported(ProtocolError):
    """A well-formed HTTP version other than 1.0 and 1.1: 505."""

    status = HTTPStatus.HTTP_VERSION_NOT_SUPPORTED


class ServiceUnavailable(ProtocolError):
    """The server is full (connections or queue); try again shortly: 503."""

    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(
        self, detail: str = "The server is busy; please try again in a moment."
    ) -> None:
        super().__init__(detail)

    def extra_headers(self) -> tuple[tuple[str, str], ...]:
        return (("Retry-After", "1"),)
