"""The sans-I/O core both editions share: parsing, routing, responses, options.

Nothing in this package opens a socket, starts a thread, runs an event loop or
sleeps; the shells in ``threaded`` and ``asyncio_server`` do that.
"""
