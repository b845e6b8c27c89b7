"""Logging set-up, the start-up line and the access-log line of both editions."""

from __future__ import annotations

import logging
import re
import time

from common.connection import Exchange
from common.runtime.cli import Options

ACCESS_LOGGER = "hello.access"
LISTENING = re.compile(r"Listening on http://\[?([^\]\s]+?)\]?:(\d+) \((.*)\)")
"""The start-up line (:func:`listening_message`) as tests, the bench and the
soak read it: groups host, port and details."""


def configure_logging(level: str, *, pids: bool = False) -> None:
    """Plain lines on stderr: time, level, message (the book printed to stdout).

    ``pids`` puts ``[PID]`` before the message, so that the lines of the
    processes of ``--processes N`` (and their access logs) can be told apart.
    """
    pid = " [%(process)d]" if pids else ""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s{pid} %(message)s",
        force=True,
    )


def url(host: str, port: int) -> str:
    """``http://HOST:PORT``, with brackets around an IPv6 address."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def listening_message(
    options: Options, port: int, details: str, host: str | None = None
) -> str:
    """``Listening on http://HOST:PORT (EDITION, DETAILS)`` with the real port
    (and the real address, ``host``, of a socket inherited rather than bound).

    Tests and the bench read the port from this line when they start a server
    on ``--port 0``, so its shape is part of the interface.
    """
    where = url(options.host if host is None else host, port)
    return f"Listening on {where} ({options.edition.value}, {details})"


def client_name(peer: object) -> str:
    """``HOST:PORT`` (``[HOST]:PORT`` for IPv6) for the access log; ``-`` if unknown."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "-"


def workers_detail(count: int) -> str:
    """``1 worker``, ``4 workers``: the threaded edition's start-up detail."""
    return "1 worker" if count == 1 else f"{count} workers"


DROPPED_FOR_WRITE_TIMEOUT = "Dropped %s: it read nothing for %.1f s (--write-timeout)."
"""Both editions' log line (client, seconds) for a client that took nothing."""

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client left before its answer."""


class AccessLog:
    """One line per response: client, request line, status, bytes, duration."""

    def __init__(self, enabled: bool) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self.enabled = enabled

    def record(
        self,
        client: str,
        exchange: Exchange,
        sent: int,
        started: int,
        *,
        departed: bool = False,
    ) -> None:
        """Log one exchange; ``started`` is ``time.perf_counter_ns()`` at its start.

        ``departed``: the client left before its answer was ready, and the
        line says 499 (nginx's "client closed request"), not what we would
        have sent.
        """
        if not self.enabled or not self._logger.isEnabledFor(logging.INFO):
            return
        millis = (time.perf_counter_ns() - started) / 1e6
        self._logger.info(
            '%s "%s" %d %d %.1fms',
            client,
            exchange.request_line,
            CLIENT_CLOSED_REQUEST if departed else exchange.reply.status.value,
            sent,
            millis,
        )
