"""The sans-I/O core both editions share: parsing, routing, responses, limits.

No module directly in this package opens a socket, starts a thread, runs an
event loop, handles a signal or sleeps; the shells in ``threaded`` and
``asyncio_server`` do that, with what both need of the OS in
:mod:`common.runtime` (which imports the core, never the reverse).
"""
