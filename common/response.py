"""Serialising a reply to the exact bytes both editions send.

One function builds every response, so the two editions cannot drift apart:
their bytes differ only in ``Date``. Head and body go out in one buffer (one
``send``): the stdlib server's separate writes meet Nagle's algorithm and
delayed ACKs and cost ~40 ms a response.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from common.routes import Reply, reason

SERVER_NAME = "hello"
_CACHE_LIMIT = 64  # distinct (reply, connection, head) combinations kept per second


class ConnectionHeader(enum.Enum):
    """What the ``Connection`` header says, if anything (RFC 9112 §9.3)."""

    NONE = None  # HTTP/1.1 persistent: nothing to say
    KEEP_ALIVE = "keep-alive"  # HTTP/1.0 persistent must be announced
    CLOSE = "close"  # the server closes after this response


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def http_date(seconds: float) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7): ``Sun, 06 Nov 1994 08:49:37 GMT``.

    Written out rather than taken from ``email.utils.formatdate``: that one
    import pulls in the email package, ~1 MiB of a server's resident memory,
    and the day and month names must be English whatever the locale.
    """
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


_Cache = dict[tuple[int, int, bool], tuple[Reply, bytes]]
"""(id(reply), id(Connection header), head) → (reply, response). The key
holds only what hashes in C (a Reply or an enum member hashes in Python code,
which was a few percent of the server's time; the header's members are
singletons); the value keeps the reply alive, so its id cannot be reused
while the entry lives, and a hit checks identity."""


class Responder:
    """Renders replies, caching the bytes for the second they stay valid.

    ``Date`` is formatted at most once a second (RFC 9110 §6.6.1 asks for
    one-second resolution); responses to the fixed routes are cached with it
    and rebuilt when it changes. ``clock`` is injectable for tests.

    The second, its date and its cache are swapped as one tuple, never
    updated field by field: pool workers may share a responder, and a worker
    that read the old date must not be able to store a stale response into
    the new second's cache.
    """

    def __init__(
        self, server: str = SERVER_NAME, clock: Callable[[], float] = time.time
    ) -> None:
        self._server = server
        self._clock = clock
        self._now: tuple[int, str, _Cache] = (-1, "", {})

    def _current(self) -> tuple[int, str, _Cache]:
        """This second, its IMF-fixdate and its response cache."""
        second = int(self._clock())
        now = self._now
        if second != now[0]:
            now = (second, http_date(second), {})
            self._now = now
        return now

    def date(self) -> str:
        """The current IMF-fixdate, reformatted only when the second changes."""
        return self._current()[1]

    def render(
        self, reply: Reply, connection: ConnectionHeader, *, head: bool = False
    ) -> bytes:
        """The full response: status line, headers, blank line, body unless HEAD."""
        _, date, cache = self._current()
        key = (id(reply), id(connection), head)
        cached = cache.get(key)
        if cached is not None and cached[0] is reply:
            return cached[1]
        status = reply.status
        lines = [
            f"HTTP/1.1 {status.value} {reason(status)}",
            "Content-Type: text/html; charset=utf-8",
            f"Content-Length: {len(reply.body)}",
            f"Date: {date}",
            f"Server: {self._server}",
        ]
        if connection.value is not None:
            lines.append(f"Connection: {connection.value}")
        lines.extend(f"{name}: {value}" for name, value in reply.headers)
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not head:
            data += reply.body
        if len(cache) < _CACHE_LIMIT:
            cache[key] = (reply, data)
        return data
