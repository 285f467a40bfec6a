"""arq, polling every 10 ms (its default of 500 ms would make every run wait half a second)."""

import asyncio
import os
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

URL = os.environ["BENCH_REDIS_URL"]
NS = os.environ["BENCH_QUEUE_NS"]
POLL = 0.01


async def inc(ctx: Any, x: int) -> int:
    return x + 1


class WorkerSettings:
    functions = [inc]
    redis_settings = RedisSettings.from_dsn(URL)
    queue_name = f"{NS}-arq"
    poll_delay = POLL
    max_jobs = 1000


WORKER = ["arq", f"{__name__}.WorkerSettings"]


async def _result(job: Any, poll: float) -> int:
    # arq may report a job "not in queue" between taking it off the queue and storing its
    # result (seen with arq 0.25): look again.
    from arq.jobs import ResultNotFound

    for _ in range(1000):
        try:
            return int(await job.result(timeout=120, poll_delay=poll))
        except ResultNotFound:
            await asyncio.sleep(poll)
    raise TimeoutError("arq never stored the result")


async def _results(xs: list[int], one_by_one: bool) -> list[int]:
    pool = await create_pool(
        WorkerSettings.redis_settings, default_queue_name=WorkerSettings.queue_name
    )
    try:
        out = []
        if one_by_one:
            for x in xs:
                job = await pool.enqueue_job("inc", x)
                out.append(await _result(job, 0.001))
            return out
        jobs = [await pool.enqueue_job("inc", x) for x in xs]
        for job in jobs:
            out.append(await _result(job, POLL))
        return out
    finally:
        await pool.aclose()


def results(xs: list[int]) -> list[int]:
    return asyncio.run(_results(xs, False))


def one_by_one(xs: list[int]) -> list[int]:
    return asyncio.run(_results(xs, True))
