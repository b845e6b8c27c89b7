"""An aiohttp server: ``python -m bench.peers.aiohttp_app PORT``."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from bench.peers import CONTENT_TYPE, page_for, port_argument


async def handle(request: web.Request) -> web.Response:
    status, body, delay = page_for(request.path)
    if delay:
        await asyncio.sleep(delay)
    return web.Response(
        status=status,
        body=body,
        content_type=CONTENT_TYPE.split(";")[0],
        charset="utf-8",
    )


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    port = port_argument("bench.peers.aiohttp_app")
    print(
        f"Listening on http://127.0.0.1:{port} (aiohttp)", file=sys.stderr, flush=True
    )
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
