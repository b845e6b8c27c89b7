"""Answers that did not fit in the socket: sent on by the acceptor, not a worker.

A worker sends each answer once, without waiting. Whatever the client's
socket cannot take at once (a client that pipelines and reads slowly, or
not at all) goes to :class:`Writers`: the acceptor watches the socket for
room and sends the rest as the client takes it, then parks or closes the
connection as the worker would have. So a slow reader costs a descriptor and
its unsent bytes — at most one read's worth of answers, since nothing more is
read from it meanwhile — and never a worker.

``--write-timeout`` drops a client that takes none of its answer for that
long: no progress, not a total, so a slow but steady download is served to
the end (nginx's ``send_timeout``). :func:`send_rest_here` is the plain version, a
blocking send in the worker under the same rule; the server falls back to it
once the acceptor has stopped.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import selectors
import threading
from collections.abc import Callable

from common.runtime.logs import DROPPED_FOR_WRITE_TIMEOUT
from common.runtime.tcp import DONTWAIT, LAST_WORD, in_flight
from threaded.client import Client

logger = logging.getLogger("threaded.server")


class Afterwards(enum.Enum):
    """What becomes of a connection once its answers are all sent."""

    PARK = enum.auto()  # wait for its next request
    CLOSE = enum.auto()
    LINGER = enum.auto()  # close in stages: the client may still be sending


def backlog(client: Client) -> int:
    """What the client has yet to take: ours unsent, and the kernel's unacknowledged."""
    return len(client.unsent) + in_flight(client.sock)


def send_now(client: Client, responses: list[bytes], *, last_word: bool) -> None:
    """Send ``client.unsent`` and ``responses`` in one go, never waiting;
    what the socket cannot take stays in ``client.unsent``.

    ``last_word``: the connection closes right after, so the bytes may wait
    for the close and leave with its FIN (``MSG_MORE``).
    """
    if len(responses) == 1 and not client.unsent:
        data = responses[0]
    else:
        data = b"".join([client.unsent, *responses])
    try:
        sent = client.sock.send(data, LAST_WORD if last_word else DONTWAIT)
    except BlockingIOError:
        sent = 0
    client.unsent = memoryview(data)[sent:] if sent < len(data) else b""


def send_rest_here(client: Client, write_timeout: float) -> bool:
    """Send ``client.unsent`` in this thread, blocking; False when the client
    is dropped instead: gone, or it took none of it for ``write_timeout``
    seconds (logged)."""
    sock = client.sock
    left = backlog(client)
    sock.settimeout(write_timeout)
    try:
        while client.unsent:
            try:
                sent = sock.send(client.unsent)
            except TimeoutError:
                if (now_left := backlog(client)) >= left:
                    logger.info(DROPPED_FOR_WRITE_TIMEOUT, client.name(), write_timeout)
                    return False
                left = now_left
                continue
            client.unsent = client.unsent[sent:]
            left = backlog(client)
    except OSError:  # reset: the client has gone
        return False
    finally:
        sock.settimeout(None)
    return True


class _Writing:
    """A connection the acceptor is sending the rest of an answer to."""

    __slots__ = ("afterwards", "client", "deadline", "left")

    def __init__(self, client: Client, afterwards: Afterwards, deadline: float):
        self.client = client
        self.afterwards = afterwards
        self.deadline = deadline
        self.left = backlog(client)


class Writers:
    """The connections the acceptor is sending answers to (see the module).

    Workers hand connections over from any thread (:meth:`hand_over`); the
    rest runs on the acceptor's thread, in its selector.
    """

    def __init__(
        self,
        selector: selectors.BaseSelector,
        wake: Callable[[], None],
        write_timeout: float,
        finish: Callable[[Client, Afterwards, float], None],
        drop: Callable[[Client], None],
    ) -> None:
        self._selector = selector
        self._wake = wake
        self._timeout = write_timeout
        self._finish = finish
        self._drop = drop
        self._lock = threading.Lock()
        self._handed: list[tuple[Client, Afterwards]] = []  # under the lock
        self._closed = False
        self._writing: set[_Writing] = set()  # the acceptor's own
        self.next_check = math.inf
        """When :meth:`expire` must next run (``time.monotonic()``)."""

    def __len__(self) -> int:
        return len(self._writing) + len(self._handed)

    def hand_over(self, client: Client, afterwards: Afterwards) -> bool:
        """A worker leaves the rest of ``client.unsent`` to the acceptor; False
        once the acceptor has stopped (send it in the worker then)."""
        with self._lock:
            if self._closed:
                return False
            self._handed.append((client, afterwards))
        self._wake()
        return True

    def take(self, now: float) -> None:
        """Watch what workers handed over for room to write (acceptor only)."""
        with self._lock:
            handed, self._handed = self._handed, []
        for client, afterwards in handed:
            writing = _Writing(client, afterwards, now + self._timeout)
            try:
                self._selector.register(client.sock, selectors.EVENT_WRITE, writing)
            except (OSError, ValueError):
                self._drop(client)
                continue
            self._writing.add(writing)
            self.next_check = min(self.next_check, writing.deadline)

    def owns(self, data: object) -> bool:
        """Is this selector key's data one of ours?"""
        return isinstance(data, _Writing)

    def write(self, writing: _Writing, now: float) -> None:
        """The socket has room: send what it takes; finish once all is sent."""
        client = writing.client
        try:
            sent = client.sock.send(client.unsent, DONTWAIT)
        except BlockingIOError:
            return
        except OSError:  # reset: the client has gone
            self._end(writing)
            self._drop(client)
            return
        # No deadline to move: room in the socket means the client took
        # bytes, which the next check sees as a smaller backlog.
        client.unsent = client.unsent[sent:]
        if not client.unsent:
            self._end(writing)
            self._finish(client, writing.afterwards, now)

    def expire(self, now: float) -> None:
        """Drop the clients that have taken nothing for ``--write-timeout``."""
        if now < self.next_check:
            return
        for writing in [w for w in self._writing if w.deadline <= now]:
            left = backlog(writing.client)
            if left < writing.left:  # it read, though the socket had no room yet
                writing.left = left
                writing.deadline = now + self._timeout
                continue
            logger.info(DROPPED_FOR_WRITE_TIMEOUT, writing.client.name(), self._timeout)
            self._end(writing)
            self._drop(writing.client)
        self.next_check = min((w.deadline for w in self._writing), default=math.inf)

    def stop(self) -> list[tuple[Client, Afterwards]]:
        """Take no more; return every connection still owed bytes, unwatched."""
        with self._lock:
            self._closed = True
            owed, self._handed = self._handed, []
        for writing in list(self._writing):
            self._end(writing)
            owed.append((writing.client, writing.afterwards))
        return owed

    def _end(self, writing: _Writing) -> None:
        self._writing.discard(writing)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(writing.client.sock)
