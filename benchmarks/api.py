"""Timing, usable from outside the harness: ``time_flow`` for any flow, ``run_workload`` for ours.

Every repetition runs in the same process, after a garbage collection (async code inside one
event loop run, so that loop start-up is not charged to the work). Peak memory comes from one
extra repetition under :mod:`tracemalloc`, measured above what was allocated before it started:
the inputs are built first, so the figure is what the run itself needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import inspect
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from .workloads import WORKLOADS, Case, Mode, get_case


@attrs.frozen
class TimingResult:
    """Wall-clock seconds of each repetition of one run over ``n`` items."""

    name: str
    n: int
    times: tuple[float, ...]
    #: Peak bytes allocated during one extra repetition (tracemalloc), above its start.
    peak_bytes: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def worst(self) -> float:
        return max(self.times)

    @property
    def spread(self) -> float:
        """(worst - best) / median: how far apart the repetitions were."""
        median = self.median
        return (self.worst - self.best) / median if median else 0.0

    @property
    def per_item_us(self) -> float:
        """Median microseconds per item."""
        return self.median / self.n * 1e6

    @property
    def peak_bytes_per_item(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n": self.n,
            "times_s": list(self.times),
            "median_s": self.median,
            "best_s": self.best,
            "worst_s": self.worst,
            "spread": self.spread,
            "per_item_us": self.per_item_us,
            "peak_bytes": self.peak_bytes,
            "peak_bytes_per_item": self.peak_bytes_per_item,
        }


@attrs.frozen
class Measurement:
    """The outcome of one (workload, implementation, N): a timing, or why there is none."""

    workload: str
    impl: str
    n: int
    status: str  # "ok", "unavailable", "skipped" or "error"
    reason: str | None = None
    timing: TimingResult | None = None
    memory_method: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """The inverse of :meth:`to_dict` (for merging results of earlier runs)."""
        timing = None
        if data.get("times_s"):
            timing = TimingResult(
                data.get("name") or f"{data['workload']}:{data['impl']}",
                data["n"],
                tuple(data["times_s"]),
                data.get("peak_bytes"),
            )
        return cls(
            data["workload"],
            data["impl"],
            data["n"],
            data["status"],
            data.get("reason"),
            timing,
            data.get("memory_method"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "workload": self.workload,
            "impl": self.impl,
            "n": self.n,
            "status": self.status,
            "reason": self.reason,
            "memory_method": self.memory_method,
        }
        if self.timing is not None:
            out.update(self.timing.to_dict())
        return out


@attrs.frozen
class _Raw:
    times: tuple[float, ...]
    peak: int | None
    output: Any


def measure(
    fn: Callable[[], Any],
    mode: Mode,
    *,
    repeat: int = 5,
    warmup: Callable[[], Any] | None = None,
    memory: bool = False,
    budget: float | None = None,
) -> _Raw:
    """Time ``repeat`` calls of ``fn`` (awaited in ``asyncio``/``trio`` mode).

    ``warmup`` runs once first, untimed. Repetitions stop early once ``budget`` seconds have been
    spent (at least one always runs). ``memory`` adds one repetition under tracemalloc, unless
    that would overrun the budget (tracemalloc slows a run down two to three times).
    """
    if mode in ("sync", "process"):
        return _measure_sync(fn, repeat, warmup, memory, budget)
    raw: _Raw = run_async(mode, lambda: _measure_async(fn, repeat, warmup, memory, budget))
    return raw


def run_async(mode: Mode, main: Callable[[], Any]) -> Any:
    """Run the coroutine function ``main`` on a fresh event loop of ``mode``."""
    if mode == "asyncio":
        return asyncio.run(main())
    if mode == "trio":
        import trio

        return trio.run(main)
    raise ValueError(f"not an event loop mode: {mode!r}")


_freezing: contextvars.ContextVar[bool] = contextvars.ContextVar("freezing", default=False)


def _settle() -> None:
    gc.collect()
    if _freezing.get():
        gc.freeze()  # whatever was imported since is settled too


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the heap as it is (:func:`gc.freeze`) for a batch of measurements.

    Collections inside the timed regions then see only the runs' own objects, not the libraries
    the harness imported, and the collection before each repetition takes microseconds rather
    than tens of milliseconds. The heap is unfrozen on exit.
    """
    token = _freezing.set(True)
    _settle()
    try:
        yield
    finally:
        _freezing.reset(token)
        gc.unfreeze()


def _measure_sync(
    fn: Callable[[], Any],
    repeat: int,
    warmup: Callable[[], Any] | None,
    memory: bool,
    budget: float | None,
) -> _Raw:
    if warmup is not None:
        warmup()
    times: list[float] = []
    output: Any = None
    for i in range(repeat):
        _settle()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if i == 0:
            output = result
        del result
        if budget is not None and sum(times) >= budget:
            break
    peak = None
    if memory and (budget is None or 3 * statistics.median(times) < budget):
        _settle()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            fn()
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
    return _Raw(tuple(times), peak, output)


async def _measure_async(
    fn: Callable[[], Any],
    repeat: int,
    warmup: Callable[[], Any] | None,
    memory: bool,
    budget: float | None,
) -> _Raw:
    if warmup is not None:
        await warmup()
    times: list[float] = []
    output: Any = None
    for i in range(repeat):
        _settle()
        t0 = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t0)
        if i == 0:
            output = result
        del result
        if budget is not None and sum(times) >= budget:
            break
    peak = None
    if memory and (budget is None or 3 * statistics.median(times) < budget):
        _settle()
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            await fn()
            peak = tracemalloc.get_traced_memory()[1] - start
        finally:
            tracemalloc.stop()
    return _Raw(tuple(times), peak, output)


def time_flow(
    flow_fn: Callable[..., Any],
    *args: Any,
    repeat: int = 5,
    n: int = 1,
    backend: str = "asyncio",
    memory: bool = False,
    warmup: bool = True,
    name: str | None = None,
    **kwargs: Any,
) -> TimingResult:
    """Time ``flow_fn(*args, **kwargs)``: a sync flow is called, an async one is awaited on a
    fresh ``backend`` loop (``"asyncio"`` or ``"trio"``).

    ``n`` is how many items one call handles, for :attr:`TimingResult.per_item_us`.
    """
    fn = getattr(flow_fn, "fn", flow_fn)
    is_async = bool(getattr(flow_fn, "is_async", False)) or inspect.iscoroutinefunction(fn)
    mode: Mode = backend if is_async else "sync"  # type: ignore[assignment]  # backend is one of the async Mode literals here
    if is_async and backend not in ("asyncio", "trio"):
        raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")

    def call() -> Any:
        return flow_fn(*args, **kwargs)

    raw = measure(call, mode, repeat=repeat, warmup=call if warmup else None, memory=memory)
    label = name or getattr(flow_fn, "name", None) or getattr(fn, "__name__", "flow")
    return TimingResult(str(label), n, raw.times, raw.peak)


def run_workload(
    name: str,
    n: int,
    impl: str = "actorflow",
    *,
    repeat: int = 5,
    memory: bool = False,
    budget: float | None = None,
    check: bool = True,
) -> Measurement:
    """Run one implementation of one workload at size ``n``.

    An implementation that cannot run here (a missing library, a feature not built yet) gives a
    Measurement with ``status="unavailable"`` and the reason, rather than raising.
    """
    case = get_case(name, impl)  # KeyError naming the choices
    workload = WORKLOADS[name]
    if workload.fixed_n is not None:
        n = workload.fixed_n
    reason = case.unavailable()
    if reason is not None:
        return Measurement(name, impl, n, "unavailable", reason)
    try:
        return _run_case(name, case, n, workload.expected, repeat, memory, budget, check)
    except Exception as exc:
        return Measurement(name, impl, n, "error", f"{type(exc).__name__}: {exc}")


def _run_case(
    name: str,
    case: Case,
    n: int,
    expected: Callable[[int], Any],
    repeat: int,
    memory: bool,
    budget: float | None,
    check: bool,
) -> Measurement:
    if case.max_repeat is not None:
        repeat = min(repeat, case.max_repeat)
    fn = case.make(n)
    # A process case warms up with one untimed start (it fills the bytecode cache).
    warmup = case.make(min(n, 10)) if case.mode != "process" else fn
    memory = memory and case.mode != "process"
    raw = measure(fn, case.mode, repeat=repeat, warmup=warmup, memory=memory, budget=budget)
    if check:
        want = expected(n)
        if raw.output != want:
            got = raw.output
            shown = got if not isinstance(got, list) or len(got) < 8 else f"{got[:8]}..."
            raise AssertionError(f"{case.impl} returned {shown!r} for n={n}, not the expected")
    timing = TimingResult(f"{name}:{case.impl}", n, raw.times, raw.peak)
    return Measurement(
        name,
        case.impl,
        n,
        "ok",
        timing=timing,
        memory_method=None if raw.peak is None else "tracemalloc",
    )
