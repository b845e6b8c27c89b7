"""The least each asyncio design can do per request, for ``bench.instructions``.

``python -m bench.peers.bare_asyncio streams|protocol PORT``: read a request,
write a fixed hello reply, close if the request asked to. No parsing, no
deadlines, no limits, no log: what is left is the design's own machinery —
``asyncio.start_server``'s reader, writer, protocol and task per connection,
or one ``asyncio.Protocol``'s callbacks — so what it costs is the floor under
any server built on that design. Not a server to use: it answers anything,
even half a request, with the same bytes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import cast

from bench.peers import CONTENT_TYPE, PAGES

DESIGNS = ("streams", "protocol")
READ_SIZE = 65536
_HEAD = f"HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: "
REPLY = _HEAD.encode() + b"%d\r\n\r\n%s" % (len(PAGES.hello), PAGES.hello)


def wants_close(request: bytes) -> bool:
    """Did the request say ``Connection: close``? (A look, not a parse.)"""
    return b"close" in request.lower()


async def handle_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The streams design: one coroutine per connection."""
    while request := await reader.read(READ_SIZE):
        writer.write(REPLY)
        if wants_close(request):
            break
    writer.close()


class BareProtocol(asyncio.Protocol):
    """The callback design: the loop calls us with each read."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(REPLY)
        if wants_close(data):
            self.transport.close()


async def serve(design: str, port: int) -> None:
    """Listen on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    if design == "streams":
        server = await asyncio.start_server(handle_connection, "127.0.0.1", port)
    else:
        server = await loop.create_server(BareProtocol, "127.0.0.1", port)
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set_result, None)
    real_port = server.sockets[0].getsockname()[1]
    loop_name = type(loop).__module__.partition(".")[0]  # uvloop, or asyncio
    print(
        f"Listening on http://127.0.0.1:{real_port} (bare {design}, {loop_name})",
        file=sys.stderr,
        flush=True,
    )
    await stop
    server.close()


def main() -> None:
    arguments = sys.argv[1:]
    if (
        len(arguments) != 2
        or arguments[0] not in DESIGNS
        or not arguments[1].isdigit()
        or int(arguments[1]) > 65535
    ):
        sys.stderr.write(
            "usage: python -m bench.peers.bare_asyncio streams|protocol PORT\n"
        )
        sys.exit(2)
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the asyncio edition
    except ImportError:
        asyncio.run(serve(arguments[0], int(arguments[1])))
    else:
        uvloop.run(serve(arguments[0], int(arguments[1])))


if __name__ == "__main__":
    main()
