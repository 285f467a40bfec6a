"""The job queues users compare background tasks with, each serving the same trivial task on the
same Redis: one module per queue, importable by its worker process and by the producer.

Each module reads ``BENCH_REDIS_URL`` and ``BENCH_QUEUE_NS`` (a name that keeps one benchmark
run's queues apart) when imported, and exposes ``WORKER`` (the worker command's arguments after
``python -m``), ``results(xs)`` (queue one run per item, then read every result back) and
``one_by_one(xs)`` (one run at a time, each to its result). Installed by the ``bench-queue``
extra; a queue that is not installed is reported unavailable.
"""
