"""The threaded edition: the book's hand-built thread pool serving HTTP/1.1.

``threaded.pool`` is the pool (no HTTP in it); ``threaded.server`` is the
server on it; ``python -m threaded`` runs it.
"""
