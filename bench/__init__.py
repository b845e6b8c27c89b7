"""The latency and throughput bench: both editions side by side, measured.

``python -m bench`` starts both editions on free ports, sends C simultaneous
``GET /sleep`` (each on its own connection) and a steady stream of ``GET /``
meanwhile, and prints each route's latency beside what a queueing model
predicts: the thread pool serves the sleeps in waves of ``workers``, the event
loop all at once. ``python -m bench throughput`` measures hello-page requests
per second. See ``bench/README-fragment.md`` for every option.
"""
