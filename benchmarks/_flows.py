"""The workloads written once against the Prefect-style API and built for actorflow or Prefect.

The same source runs on both libraries, which is the claim actorflow makes: change the import,
keep the script. The one difference is how async code collects a future: actorflow's futures
are awaitable, Prefect's are waited on with ``.result()``.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _fns


def build(lib: ModuleType, storage: str | None = None) -> dict[str, Callable[..., Any]]:
    """Every flow the harness times, made with ``lib.flow`` and ``lib.task``.

    Keys are ``"<workload>"`` for the sync flow and ``"<workload>/async"`` for the async one.
    ``storage`` is where the ``cached`` task keeps its records (a path), if not the default.
    """
    flow, task = lib.flow, lib.task
    awaitable_futures = lib.__name__ == "actorflow"

    async def collect(future: Any) -> Any:
        if awaitable_futures:
            return await future
        return future.result()

    inc = task(_fns.inc, name="inc")
    ainc = task(_fns.ainc, name="ainc")

    # submit: N submits, then N results.
    @flow(name="bench-submit")
    def submit(xs: list[int]) -> list[int]:
        futures = [inc.submit(x) for x in xs]
        return [f.result() for f in futures]

    @flow(name="bench-submit-async")
    async def submit_async(xs: list[int]) -> list[int]:
        futures = [ainc.submit(x) for x in xs]
        return [await collect(f) for f in futures]

    # map: one call, N runs.
    @flow(name="bench-map")
    def map_(xs: list[int]) -> list[int]:
        return inc.map(xs).result()  # type: ignore[no-any-return]  # futures are untyped across the flow boundary

    @flow(name="bench-map-async")
    async def map_async(xs: list[int]) -> list[int]:
        return [await collect(f) for f in ainc.map(xs)]

    # gather: async task calls run concurrently by the event loop, no task runner.
    @flow(name="bench-gather")
    async def gather_asyncio(xs: list[int]) -> list[int]:
        import asyncio

        return list(await asyncio.gather(*(ainc(x) for x in xs)))

    @flow(name="bench-gather-trio")
    async def gather_trio(xs: list[int]) -> list[int]:
        import trio

        out: list[int] = [0] * len(xs)

        async def one(i: int, x: int) -> None:
            out[i] = await ainc(x)

        async with trio.open_nursery() as nursery:
            for i, x in enumerate(xs):
                nursery.start_soon(one, i, x)
        return out

    # call: N sequential direct calls inside one flow.
    @flow(name="bench-call")
    def call(xs: list[int]) -> list[int]:
        return [inc(x) for x in xs]

    @flow(name="bench-call-async")
    async def call_async(xs: list[int]) -> list[int]:
        return [await ainc(x) for x in xs]

    # transaction: N sequential direct calls inside one transaction (each run stages its result
    # in a transaction of its own, a child of that one); "call" is the same outside.
    transactions = importlib.import_module(f"{lib.__name__}.transactions")

    @flow(name="bench-transaction")
    def in_transaction(xs: list[int]) -> list[int]:
        with transactions.transaction():
            return [inc(x) for x in xs]

    # flowcall: N calls of a trivial flow.
    trivial = flow(_fns.inc, name="bench-trivial")
    atrivial = flow(_fns.ainc, name="bench-trivial-async")

    def flowcall(xs: list[int]) -> list[int]:
        return [trivial(x) for x in xs]

    async def flowcall_async(xs: list[int]) -> list[int]:
        return [await atrivial(x) for x in xs]

    # cached: N calls answered from the cache (keys are fresh per process: the first call of
    # the first repetition is the only miss).
    token = uuid.uuid4().hex[:12]
    options = {} if storage is None else {"result_storage": storage}
    cached_inc = task(_fns.inc, name="cached-inc", cache_key_fn=_cache_key(token), **options)

    @flow(name="bench-cached")
    def cached(xs: list[int]) -> list[int]:
        return [cached_inc(x) for x in xs]

    @flow(name="bench-cached-probe")
    def cached_probe() -> str:
        cached_inc(-1, return_state=True)
        return str(cached_inc(-1, return_state=True).name)

    # nested: parent tasks each submit FANOUT children and sum their results.
    @task(name="parent")
    def parent(chunk: range) -> int:
        futures = [inc.submit(x) for x in chunk]
        return sum(f.result() for f in futures)

    @task(name="aparent")
    async def aparent(chunk: range) -> int:
        futures = [ainc.submit(x) for x in chunk]
        return sum([await collect(f) for f in futures])

    @flow(name="bench-nested")
    def nested(chunks: list[range]) -> int:
        futures = [parent.submit(c) for c in chunks]
        return sum(f.result() for f in futures)

    @flow(name="bench-nested-async")
    async def nested_async(chunks: list[range]) -> int:
        futures = [aparent.submit(c) for c in chunks]
        return sum([await collect(f) for f in futures])

    # fanout-fanin: one source, N middles taking the source's future, one sink taking all N.
    src, mid, snk = task(_fns.source), task(_fns.middle), task(_fns.sink)
    asrc, amid, asnk = task(_fns.asource), task(_fns.amiddle), task(_fns.asink)

    @flow(name="bench-fan")
    def fan(xs: list[int]) -> int:
        a = src.submit()
        middles = [mid.submit(a, x) for x in xs]
        return snk.submit(middles).result()  # type: ignore[no-any-return]  # futures are untyped across the flow boundary

    @flow(name="bench-fan-async")
    async def fan_async(xs: list[int]) -> int:
        a = asrc.submit()
        middles = [amid.submit(a, x) for x in xs]
        return await collect(asnk.submit(middles))  # type: ignore[no-any-return]  # futures are untyped across the flow boundary

    return {
        "submit": submit,
        "submit/async": submit_async,
        "map": map_,
        "map/async": map_async,
        "gather/asyncio": gather_asyncio,
        "gather/trio": gather_trio,
        "call": call,
        "call/async": call_async,
        "transaction": in_transaction,
        "flowcall": flowcall,
        "flowcall/async": flowcall_async,
        "cached": cached,
        "cached/probe": cached_probe,
        "nested": nested,
        "nested/async": nested_async,
        "fanout-fanin": fan,
        "fanout-fanin/async": fan_async,
    }


def _cache_key(token: str) -> Callable[[Any, dict[str, Any]], str]:
    def key(context: Any, parameters: dict[str, Any]) -> str:
        return f"bench-{token}-{parameters['x']}"

    return key


def dask_flow(lib: ModuleType, runner: Any) -> Callable[[list[int]], list[int]]:
    """The ``submit`` flow on a Dask task runner."""
    inc = lib.task(_fns.inc, name="inc")

    @lib.flow(name="bench-dask", task_runner=runner)
    def dask_submit(xs: list[int]) -> list[int]:
        futures = [inc.submit(x) for x in xs]
        return [f.result() for f in futures]

    return dask_submit  # type: ignore[no-any-return]  # built dynamically from the runner
