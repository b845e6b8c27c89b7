"""``python -m asyncio_server``: see ``--help``."""

import sys

from asyncio_server.server import main

sys.exit(main())
