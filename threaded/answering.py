"""What both threaded servers do with the bytes a connection sent.

The pool's server (:mod:`threaded.server`) and the thread-per-connection one
(:mod:`threaded.spawn`, the book's Listing 21-11) differ in who reads a
connection and when; what happens once bytes are read is the same: feed the
sans-I/O core, answer every complete request in order — ``time.sleep`` for
``/sleep``, holding the thread as in the book — send the answers without
waiting (what the socket cannot take stays in ``client.unsent``), log them,
and say what to do with the connection next.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from common.budget import RequestBudget
from common.connection import Exchange, ExchangeCache
from common.errors import ServiceUnavailable
from common.response import Responder
from common.routes import Pages, Router
from common.runtime.cli import Options
from common.runtime.logs import AccessLog, client_name
from common.runtime.tcp import RECV_SIZE, readable, send_once, sleep_unless_departed
from threaded.client import Client
from threaded.writing import Afterwards, send_now

logger = logging.getLogger("threaded.server")


class Answering:
    """The protocol side of a threaded server: its router, caches, access
    log and ``--max-requests`` budget, and how it answers a read."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.limits = options.limits()
        self._router = Router(Pages.load(), options.sleep_seconds)
        # Repeated request heads parse once (a dict look-up), for all threads.
        self._cache = ExchangeCache(self._router, self.limits)
        # One responder for all threads: its caches are dicts whose single
        # operations are atomic under the GIL (a race serves a Date 1 s old).
        self._responder = Responder()
        self._access = AccessLog(options.access_log)
        self._log_access = options.access_log
        self._budget = RequestBudget(options.max_requests)
        self._busy = Exchange.failure(ServiceUnavailable())
        self.stop_requested = False
        """Set by anyone (a signal, --max-requests), read by anyone."""

    def request_stop(self) -> None:
        """Begin a graceful shutdown (each server wakes its own loop)."""
        raise NotImplementedError

    def _blocking(self) -> contextlib.AbstractContextManager[None]:
        """Around a wait that holds the thread (``/sleep``): a pool may want
        to know, to wake another worker meanwhile."""
        return contextlib.nullcontext()

    def refuse(self, sock: socket.socket, address: tuple[str, int]) -> None:
        """503 to a connection beyond ``--max-connections``, without waiting."""
        self._say_once(sock, client_name(address), self._busy)
        sock.close()

    def _say_once(self, sock: socket.socket, name: str, exchange: Exchange) -> None:
        """One answer (503, 408) sent without waiting on the client, logged."""
        started = time.perf_counter_ns()
        sent = send_once(sock, exchange.render(self._responder))
        if self._log_access:
            self._access.record(name, exchange, sent, started)

    def _closing(self, client: Client, data: bytes) -> Afterwards:
        """In stages if unread bytes could be on their way (closing at once
        would reset): not after the client closed, nor after it asked to close
        and all it sent was whole requests (RFC 9112 §9.6); shutting down, a
        client may have pipelined more."""
        if data and (
            self.stop_requested or len(data) == RECV_SIZE or not client.http.consumed
        ):
            return Afterwards.LINGER
        return Afterwards.CLOSE

    def _answer(self, client: Client, data: bytes) -> Afterwards:
        """Answer every complete request in the buffer; then what to do with
        the connection.

        Responses to pipelined requests go out together, in one ``send``,
        except that those ready before a ``/sleep`` are sent before sleeping.
        """
        http = client.http
        http.receive(data)
        exchanges: list[Exchange] = []
        while (exchange := http.next_exchange()) is not None:
            exchanges.append(exchange)
        if exchanges:
            started = time.perf_counter_ns() if self._log_access else 0
            last = len(exchanges) - 1
            pending: list[tuple[Exchange, bytes]] = []
            spent = False  # --max-requests reached: stop once the answers are out
            stopping = False  # the server is stopping and nothing more has come
            for index, exchange in enumerate(exchanges):
                delay = exchange.reply.delay
                if delay > 0:
                    if pending:
                        self._send(client, pending, started, last_word=False)
                        pending = []
                    if self._sleep(client, delay):  # the client has gone
                        self._departed(client, exchange, started)
                        return Afterwards.CLOSE
                spent = self._budget.spend()
                # Shutting down: the last answer says Connection: close, unless
                # the client sent more before the stop (answered next). The one
                # that spends --max-requests is its connection's last.
                if index == last and self.stop_requested and not spent:
                    stopping = not readable(client.sock)
                closing = spent or stopping
                response = exchange.render(self._responder, closing=closing)
                pending.append((exchange, response))
                if spent:
                    break
            last_word = http.closed or spent or stopping  # we close next
            try:
                self._send(client, pending, started, last_word=last_word)
            finally:
                if spent:  # after the answer and its log line, as the book's take(2)
                    self.request_stop()
            if last_word:
                return self._closing(client, data)
        if not data:  # the client closed its side
            return Afterwards.CLOSE
        client.request_started = (
            (client.request_started or time.monotonic()) if http.mid_request else None
        )
        return Afterwards.PARK

    def _departed(self, client: Client, exchange: Exchange, started: int) -> None:
        """Its client left during the delay: log 499, send nothing more."""
        if self._log_access:
            self._access.record(client.name(), exchange, 0, started, departed=True)
        client.unsent = b""

    def _sleep(self, client: Client, delay: float) -> bool:
        """The book's ``/sleep``: this thread is busy for ``delay`` seconds —
        unless the client leaves meanwhile (True): then it is free at once."""
        worker = threading.current_thread().name
        logger.debug("%s sleeps %.1f s for %s.", worker, delay, client.name())
        with self._blocking():
            return sleep_unless_departed(client.sock, delay)

    def _send(
        self,
        client: Client,
        answered: list[tuple[Exchange, bytes]],
        started: int,
        *,
        last_word: bool,
    ) -> None:
        """Send responses in one go, never waiting (:func:`send_now`), and log them."""
        send_now(client, [response for _, response in answered], last_word=last_word)
        if self._log_access:
            name = client.name()
            for exchange, response in answered:
                self._access.record(name, exchange, len(response), started)
