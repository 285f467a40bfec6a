"""The baselines: the same work done with bare asyncio, anyio, trio, threads and Dask.

Each builder takes the workload's input and returns what the harness times: a plain callable
(``sync`` mode) or a coroutine function (``asyncio`` / ``trio`` mode).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import _fns

#: The same default as actorflow's ThreadPoolTaskRunner (and Python's executor).
WORKERS = min(32, (os.cpu_count() or 1) + 4)

Sync = Callable[[], Any]
Async = Callable[[], Coroutine[Any, Any, Any]]


# -- N trivial async functions run concurrently: gather, submit and map --------------------------
def asyncio_gather(xs: list[int]) -> Async:
    async def run() -> list[int]:
        return list(await asyncio.gather(*(_fns.ainc(x) for x in xs)))

    return run


def anyio_group(xs: list[int]) -> Async:
    import anyio

    async def run() -> list[int]:
        out = [0] * len(xs)

        async def one(i: int, x: int) -> None:
            out[i] = await _fns.ainc(x)

        async with anyio.create_task_group() as tg:
            for i, x in enumerate(xs):
                tg.start_soon(one, i, x)
        return out

    return run


def trio_nursery(xs: list[int]) -> Async:
    import trio

    async def run() -> list[int]:
        out = [0] * len(xs)

        async def one(i: int, x: int) -> None:
            out[i] = await _fns.ainc(x)

        async with trio.open_nursery() as nursery:
            for i, x in enumerate(xs):
                nursery.start_soon(one, i, x)
        return out

    return run


# -- N trivial sync functions on threads ---------------------------------------------------------
def threadpool_submit(xs: list[int]) -> Sync:
    def run() -> list[int]:
        with ThreadPoolExecutor(WORKERS) as ex:
            futures = [ex.submit(_fns.inc, x) for x in xs]
            return [f.result() for f in futures]

    return run


def threadpool_map(xs: list[int]) -> Sync:
    def run() -> list[int]:
        with ThreadPoolExecutor(WORKERS) as ex:
            return list(ex.map(_fns.inc, xs))

    return run


# -- sequential calls: call, flowcall, cached ----------------------------------------------------
def plain_calls(xs: list[int]) -> Sync:
    def run() -> list[int]:
        inc = _fns.inc
        return [inc(x) for x in xs]

    return run


def plain_awaits(xs: list[int]) -> Async:
    async def run() -> list[int]:
        ainc = _fns.ainc
        return [await ainc(x) for x in xs]

    return run


def memoized_calls(xs: list[int]) -> Sync:
    def run() -> list[int]:
        inc = functools.cache(_fns.inc)
        return [inc(x) for x in xs]

    return run


# -- nested: parents each starting FANOUT children -----------------------------------------------
def asyncio_nested(chunks: list[range]) -> Async:
    async def parent(chunk: range) -> int:
        return sum(await asyncio.gather(*(_fns.ainc(x) for x in chunk)))

    async def run() -> int:
        return sum(await asyncio.gather(*(parent(c) for c in chunks)))

    return run


def anyio_nested(chunks: list[range]) -> Async:
    import anyio

    async def run() -> int:
        totals = [0] * len(chunks)

        async def child(out: list[int], i: int, x: int) -> None:
            out[i] = await _fns.ainc(x)

        async def parent(j: int, chunk: range) -> None:
            out = [0] * len(chunk)
            async with anyio.create_task_group() as tg:
                for i, x in enumerate(chunk):
                    tg.start_soon(child, out, i, x)
            totals[j] = sum(out)

        async with anyio.create_task_group() as tg:
            for j, chunk in enumerate(chunks):
                tg.start_soon(parent, j, chunk)
        return sum(totals)

    return run


def trio_nested(chunks: list[range]) -> Async:
    import trio

    async def run() -> int:
        totals = [0] * len(chunks)

        async def child(out: list[int], i: int, x: int) -> None:
            out[i] = await _fns.ainc(x)

        async def parent(j: int, chunk: range) -> None:
            out = [0] * len(chunk)
            async with trio.open_nursery() as nursery:
                for i, x in enumerate(chunk):
                    nursery.start_soon(child, out, i, x)
            totals[j] = sum(out)

        async with trio.open_nursery() as nursery:
            for j, chunk in enumerate(chunks):
                nursery.start_soon(parent, j, chunk)
        return sum(totals)

    return run


def threadpool_nested(chunks: list[range]) -> Sync:
    # Parents wait on their children, so children get a pool of their own: one bounded pool
    # shared by both deadlocks once every worker holds a waiting parent.
    def run() -> int:
        with ThreadPoolExecutor(WORKERS) as parents, ThreadPoolExecutor(WORKERS) as children:

            def parent(chunk: range) -> int:
                futures = [children.submit(_fns.inc, x) for x in chunk]
                return sum(f.result() for f in futures)

            futures = [parents.submit(parent, c) for c in chunks]
            return sum(f.result() for f in futures)

    return run


# -- fanout-fanin: source -> N middles -> sink ---------------------------------------------------
def asyncio_fan(xs: list[int]) -> Async:
    async def run() -> int:
        a = asyncio.ensure_future(_fns.asource())

        async def middle(x: int) -> int:
            return await _fns.amiddle(await a, x)

        return await _fns.asink(await asyncio.gather(*(middle(x) for x in xs)))

    return run


def trio_fan(xs: list[int]) -> Async:
    import trio

    async def run() -> int:
        ready = trio.Event()
        box = [0]
        out = [0] * len(xs)

        async def source() -> None:
            box[0] = await _fns.asource()
            ready.set()

        async def middle(i: int, x: int) -> None:
            await ready.wait()
            out[i] = await _fns.amiddle(box[0], x)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(source)
            for i, x in enumerate(xs):
                nursery.start_soon(middle, i, x)
        return await _fns.asink(out)

    return run


def threadpool_fan(xs: list[int]) -> Sync:
    def run() -> int:
        with ThreadPoolExecutor(WORKERS) as ex:
            a = ex.submit(_fns.source)
            middles = [ex.submit(lambda x: _fns.middle(a.result(), x), x) for x in xs]
            return ex.submit(lambda: _fns.sink(m.result() for m in middles)).result()

    return run


# -- Dask: a shared in-process cluster -------------------------------------------------------------
class DaskCluster:
    """One ``distributed`` cluster for the whole harness run, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cluster: Any = None
        self._client: Any = None

    @staticmethod
    def missing() -> str | None:
        try:
            import distributed  # noqa: F401 (imported only to check it is installed)
        except ImportError:
            return "distributed is not installed (pip install 'actorflow[dask]')"
        return None

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                self._cluster = LocalCluster(
                    n_workers=1,
                    threads_per_worker=2,
                    processes=False,
                    dashboard_address=":0",  # a free port: 8787 may be taken
                )
                self._client = Client(self._cluster)
            return self._client

    @property
    def address(self) -> str:
        return str(self.client().scheduler.address)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._cluster.close()
                self._client = self._cluster = None


DASK = DaskCluster()


def dask_submit(xs: list[int]) -> Sync:
    client = DASK.client()

    def run() -> list[int]:
        futures = [client.submit(_fns.inc, x, pure=False) for x in xs]
        return list(client.gather(futures))

    return run


def dask_map(xs: list[int]) -> Sync:
    client = DASK.client()

    def run() -> list[int]:
        return list(client.gather(client.map(_fns.inc, xs, pure=False)))

    return run


def dask_fan(xs: list[int]) -> Sync:
    client = DASK.client()

    def run() -> int:
        a = client.submit(_fns.source, pure=False)
        middles = [client.submit(_fns.middle, a, x, pure=False) for x in xs]
        return int(client.submit(_fns.sink, middles, pure=False).result())

    return run
