"""Every bound and timeout, in one place, so both editions enforce the same ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Protocol bounds (bytes, counts) and the default deadlines (seconds).

    The book's server had none of these: a request line without a newline was
    buffered forever and a silent client held a worker forever. Each bound here
    turns one of those failures into a status code.
    """

    max_request_line: int = 8 * 1024
    """Longest request line, CRLF excluded; longer → 414."""
    max_header_bytes: int = 64 * 1024
    """Largest header section (all field lines); larger → 431."""
    max_header_count: int = 100
    """Most header field lines; more → 431."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body we read and discard; larger → 413."""
    max_chunk_line: int = 1024
    """Longest chunk-size line (size and extensions) in a chunked body → 400."""

    keep_alive_timeout: float = 5.0
    """How long an idle persistent connection may wait for its next request."""
    header_timeout: float = 10.0
    """From the first byte of a request to its blank line; past it → 408."""
    write_timeout: float = 10.0
    """How long a client that stops reading may keep a response unsent."""
    linger_timeout: float = 2.0
    """Closing while the client may still be sending (after an error, say): how
    long to keep reading and dropping its bytes after our FIN, so that it
    reads our response before any reset (RFC 9112 §9.6, nginx's lingering
    close)."""
    linger_bytes: int = 1024 * 1024
    """The most bytes dropped that way before closing anyway."""
