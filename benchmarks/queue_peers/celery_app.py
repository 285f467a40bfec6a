"""Celery with Redis as broker and result backend, one worker process (the solo pool); it
acknowledges a task before running it, by default."""

import os

from celery import Celery

URL = os.environ["BENCH_REDIS_URL"]
NS = os.environ["BENCH_QUEUE_NS"]

app = Celery(f"{NS}-celery", broker=URL, backend=URL)
app.conf.task_default_queue = f"{NS}-celery"
app.conf.worker_hijack_root_logger = False


@app.task
def inc(x: int) -> int:
    return x + 1


WORKER = ["celery", "-A", __name__, "worker", "--pool", "solo", "--loglevel", "WARNING"]
WORKER += ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def results(xs: list[int]) -> list[int]:
    handles = [inc.delay(x) for x in xs]
    return [h.get(timeout=120) for h in handles]


def one_by_one(xs: list[int]) -> list[int]:
    return [inc.delay(x).get(timeout=120) for x in xs]
