"""The stdlib ThreadingHTTPServer: ``python -m bench.peers.stdlib_server PORT``."""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.peers import CONTENT_TYPE, page_for, port_argument


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the other peers do

    def do_GET(self) -> None:
        status, body, delay = page_for(self.path.partition("?")[0])
        if delay:
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet, as the other peers run without an access log."""


def main() -> None:
    port = port_argument("bench.peers.stdlib_server")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(
        f"Listening on http://127.0.0.1:{port} (http.server)",
        file=sys.stderr,
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
