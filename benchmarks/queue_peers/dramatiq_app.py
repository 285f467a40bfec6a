"""Dramatiq with its Redis broker and Redis results backend (acks after running)."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ["BENCH_REDIS_URL"]
NS = os.environ["BENCH_QUEUE_NS"]

broker = RedisBroker(url=URL, namespace=f"{NS}-dramatiq")
broker.add_middleware(Results(backend=RedisBackend(url=URL, namespace=f"{NS}-dramatiq-results")))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, queue_name=NS)
def inc(x: int) -> int:
    return x + 1


WORKER = ["dramatiq", __name__, "--processes", "1", "--threads", "8"]


def results(xs: list[int]) -> list[int]:
    messages = [inc.send(x) for x in xs]
    return [m.get_result(block=True, timeout=120_000) for m in messages]


def one_by_one(xs: list[int]) -> list[int]:
    return [inc.send(x).get_result(block=True, timeout=120_000) for x in xs]
