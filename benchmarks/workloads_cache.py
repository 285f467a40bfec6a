"""What caching costs: a cache hit and a persisted miss, beside a plain task call.

Every function returns the seconds ``n`` sequential direct calls took (outside a flow), with
records in a fresh temporary directory (never ``~/.actorflow``):

- ``run_plain(n)``: a task without caching (the baseline).
- ``run_cached(n)``: cache hits served by the in-memory layer (the default).
- ``run_cached_storage(n)``: cache hits read from local storage (``cache_result_in_memory=False``):
  open, read, verify the checksum, deserialize.
- ``run_miss(n)``: misses that compute and persist a record each (lock, second look, atomic
  write, unlock).
- ``run_plain_async(n)`` / ``run_cached_async(n)`` / ``run_miss_async(n)``: the same for an
  async task on asyncio (storage writes move to a worker thread).

Run ``python -m benchmarks.workloads_cache [n] [repeat]`` for a table of medians in µs per call.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from actorflow import task
from actorflow.cache_policies import INPUTS


def inc(x: int) -> int:
    return x + 1


async def ainc(x: int) -> int:
    return x + 1


@contextmanager
def _storage() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="actorflow-bench-cache-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _timed(fn: Callable[[int], Any], xs: Any) -> float:
    start = time.perf_counter()
    for x in xs:
        fn(x)
    return time.perf_counter() - start


def run_plain(n: int) -> float:
    plain = task(inc, name="inc")
    plain(0)
    return _timed(plain, [1] * n)


def run_cached(n: int) -> float:
    with _storage() as path:
        cached = task(inc, name="inc", cache_policy=INPUTS, result_storage=path)
        cached(1)  # the one miss
        return _timed(cached, [1] * n)


def run_cached_storage(n: int) -> float:
    with _storage() as path:
        cached = task(
            inc, name="inc", cache_policy=INPUTS, result_storage=path, cache_result_in_memory=False
        )
        cached(1)
        return _timed(cached, [1] * n)


def run_miss(n: int) -> float:
    with _storage() as path:
        cached = task(inc, name="inc", cache_policy=INPUTS, result_storage=path)
        cached(-1)  # warm: directories and the lock file exist
        return _timed(cached, range(n))


async def _async_calls(fn: Any, xs: Any) -> float:
    start = time.perf_counter()
    for x in xs:
        await fn(x)
    return time.perf_counter() - start


def run_plain_async(n: int) -> float:
    plain = task(ainc, name="ainc")

    async def main() -> float:
        await plain(0)
        return await _async_calls(plain, [1] * n)

    return asyncio.run(main())


def run_cached_async(n: int) -> float:
    with _storage() as path:
        cached = task(ainc, name="ainc", cache_policy=INPUTS, result_storage=path)

        async def main() -> float:
            await cached(1)
            return await _async_calls(cached, [1] * n)

        return asyncio.run(main())


def run_miss_async(n: int) -> float:
    with _storage() as path:
        cached = task(ainc, name="ainc", cache_policy=INPUTS, result_storage=path)

        async def main() -> float:
            await cached(-1)
            return await _async_calls(cached, range(n))

        return asyncio.run(main())


WORKLOADS: dict[str, Callable[[int], float]] = {
    "plain call": run_plain,
    "hit (memory)": run_cached,
    "hit (local storage)": run_cached_storage,
    "miss, persisted": run_miss,
    "plain call, async": run_plain_async,
    "hit (memory), async": run_cached_async,
    "miss, persisted, async": run_miss_async,
}


def measure(n: int = 2000, repeat: int = 5) -> dict[str, float]:
    """Median µs per call of each workload."""
    return {
        name: statistics.median(fn(n) for _ in range(repeat)) / n * 1e6
        for name, fn in WORKLOADS.items()
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 2000
    repeat = int(argv[1]) if len(argv) > 1 else 5
    results = measure(n, repeat)
    plain = results["plain call"]
    print(f"{'workload':26s} {'µs/call':>9s} {'x plain':>8s}")
    for name, micros in results.items():
        print(f"{name:26s} {micros:9.1f} {micros / plain:8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
