"""A WSGI app for gunicorn: ``gunicorn -k gthread bench.peers.wsgi_app:app``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from bench.peers import CONTENT_TYPE, page_for

_REASONS = {200: "200 OK", 404: "404 Not Found"}


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    status, body, delay = page_for(environ.get("PATH_INFO", "/"))
    if delay:
        time.sleep(delay)
    start_response(
        _REASONS[status],
        [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))],
    )
    return [body]
