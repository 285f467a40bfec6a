"""taskiq with taskiq-redis: a Redis Streams broker and a Redis result backend (acks after the
result is saved)."""

import asyncio
import os

from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

URL = os.environ["BENCH_REDIS_URL"]
NS = os.environ["BENCH_QUEUE_NS"]

broker = RedisStreamBroker(url=URL, queue_name=f"{NS}-taskiq").with_result_backend(
    RedisAsyncResultBackend(redis_url=URL)
)


@broker.task
async def inc(x: int) -> int:
    return x + 1


WORKER = ["taskiq", "worker", f"{__name__}:broker", "--workers", "1"]


async def _results(xs: list[int], one_by_one: bool) -> list[int]:
    await broker.startup()
    try:
        out = []
        if one_by_one:
            for x in xs:
                handle = await inc.kiq(x)
                out.append(
                    (await handle.wait_result(timeout=120, check_interval=0.001)).return_value
                )
            return out
        handles = [await inc.kiq(x) for x in xs]
        for handle in handles:
            out.append((await handle.wait_result(timeout=120, check_interval=0.001)).return_value)
        return out
    finally:
        await broker.shutdown()


def results(xs: list[int]) -> list[int]:
    return asyncio.run(_results(xs, False))


def one_by_one(xs: list[int]) -> list[int]:
    return asyncio.run(_results(xs, True))
