"""The book's web server on an event loop: the common core on ``asyncio.start_server``.

``python -m asyncio_server`` serves on 127.0.0.1:7879 (uvloop when it is
installed); :class:`AsyncioServer` runs the same server inside a test.
"""

from asyncio_server.server import AsyncioServer

__all__ = ["AsyncioServer"]
