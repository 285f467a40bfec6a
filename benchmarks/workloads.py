"""The workloads and, for each, its implementations: actorflow's, Prefect's and the baselines'.

A :class:`Case` is one implementation of one workload: ``make(n)`` builds the input outside
the timed region and returns what is timed, a callable (``sync`` and ``process`` modes) or a
coroutine function (``asyncio`` and ``trio`` modes, run inside one event loop).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any, Literal

import attrs

from . import _baselines as base
from . import _flows, _fns

Mode = Literal["sync", "asyncio", "trio", "process"]


def _available() -> str | None:
    return None


@attrs.frozen
class Case:
    """One implementation of a workload."""

    impl: str
    mode: Mode
    make: Callable[[int], Callable[[], Any]]
    #: Why this case cannot run here, or ``None`` when it can.
    unavailable: Callable[[], str | None] = _available
    #: Fewer repetitions for implementations whose single run takes seconds.
    max_repeat: int | None = None

    @property
    def is_actorflow(self) -> bool:
        return self.impl.startswith("actorflow")

    @property
    def is_prefect(self) -> bool:
        return self.impl.startswith("prefect")


@attrs.frozen
class Workload:
    name: str
    description: str
    #: The result every implementation must return for input size ``n``.
    expected: Callable[[int], Any]
    cases: Callable[[], list[Case]]
    #: Sizes are ignored and this one is used (``startup`` measures one process).
    fixed_n: int | None = None
    #: Taken to 1,000,000 items in ``--full`` runs.
    large: bool = False


# -- libraries -------------------------------------------------------------------------------------
@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    """A directory for cache records, removed when the process exits."""
    return tempfile.TemporaryDirectory(prefix="actorflow-bench-")


@functools.cache
def actorflow_flows() -> dict[str, Callable[..., Any]]:
    import actorflow

    return _flows.build(actorflow, storage=os.path.join(_scratch().name, "storage"))


def prefect_missing() -> str | None:
    if importlib.util.find_spec("prefect") is None:
        return "Prefect is not installed in this interpreter (an optional extra)"
    return None


class PrefectServer:
    """A temporary Prefect API (its own SQLite database) for the whole harness run."""

    def __init__(self) -> None:
        self._stack: contextlib.ExitStack | None = None

    def ensure(self) -> None:
        if self._stack is None:
            from prefect.testing.utilities import (  # type: ignore[import-not-found,unused-ignore]  # prefect is optional and not typed
                prefect_test_harness,
            )

            stack = contextlib.ExitStack()
            # Generous: the server starts slowly on a busy machine.
            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
            self._stack = stack

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


PREFECT = PrefectServer()


@functools.cache
def prefect_flows() -> dict[str, Callable[..., Any]]:
    # A Prefect home of its own, so that the run touches nothing of the user's.
    os.environ.setdefault("PREFECT_HOME", os.path.join(_scratch().name, "prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import prefect  # type: ignore[import-not-found,unused-ignore]  # prefect is optional and not typed

    PREFECT.ensure()
    return _flows.build(prefect)


def close_resources() -> None:
    """Stop the Dask cluster, the Prefect server and the queue workers this run started."""
    try:
        base.DASK.close()
    finally:
        try:
            PREFECT.close()
        finally:
            if "benchmarks.workloads_queue" in sys.modules:
                sys.modules["benchmarks.workloads_queue"].close_benches()


@functools.cache
def cache_missing() -> str | None:
    """Caching works when a second identical call inside a flow ends ``Cached``."""
    try:
        name = actorflow_flows()["cached/probe"]()
    except Exception as exc:
        return f"caching failed: {type(exc).__name__}: {exc}"
    if name != "Cached":
        return f"caching is not built yet: a second identical call ended {name!r}, not 'Cached'"
    return None


def dask_runner_missing() -> str | None:
    try:
        from actorflow.task_runners import DaskTaskRunner  # noqa: F401 (imported only to check the runner's extra is installed)
    except ImportError as exc:
        return f"actorflow.task_runners.DaskTaskRunner does not exist yet ({exc})"
    return base.DaskCluster.missing()


@functools.cache
def _journal_path() -> str:
    return os.path.join(_scratch().name, "journal.db")


def set_journal(on: bool) -> None:
    """Journal actorflow's runs (to a file in the scratch directory) or not: process-wide, so
    every actorflow case sets it in ``make``; plain ``actorflow`` cases measure with it off."""
    from actorflow import journal

    if not on:
        journal.disable()
        return
    current = journal.current()
    if current is None or current.path != _journal_path():
        journal.enable(_journal_path())


def _journal_case(mode: Mode, key: str) -> Case:
    """actorflow with the run journal on; the timed run ends when its records are written."""

    def make(n: int) -> Callable[[], Any]:
        from actorflow import journal

        set_journal(True)
        fn = functools.partial(actorflow_flows()[key], _fns.inputs(n))
        if mode == "sync":

            def run() -> Any:
                out = fn()
                journal.current().flush()  # type: ignore[union-attr]  # set just above
                return out

            return run

        async def run_async() -> Any:
            out = await fn()
            journal.current().flush()  # type: ignore[union-attr]  # set just above
            return out

        return run_async

    impl = "actorflow+journal" if mode == "sync" else f"actorflow+journal/{mode}"
    return Case(impl, mode, make)


def _flow_case(
    impl: str,
    mode: Mode,
    key: str,
    arg: Callable[[int], Any] = _fns.inputs,
    unavailable: Callable[[], str | None] | None = None,
) -> Case:
    prefect = impl.startswith("prefect")

    def make(n: int) -> Callable[[], Any]:
        if not prefect:
            set_journal(False)
        flows = prefect_flows() if prefect else actorflow_flows()
        return functools.partial(flows[key], arg(n))

    if unavailable is None:
        unavailable = prefect_missing if prefect else _available
    return Case(impl, mode, make, unavailable, max_repeat=3 if prefect else None)


def _lib_cases(
    key: str,
    arg: Callable[[int], Any] = _fns.inputs,
    sync: bool = True,
    unavailable: Callable[[], str | None] | None = None,
) -> list[Case]:
    """actorflow sync, asyncio and trio; Prefect sync and asyncio."""
    cases = []
    if sync:
        cases.append(_flow_case("actorflow", "sync", key, arg, unavailable))
    cases += [
        _flow_case("actorflow/asyncio", "asyncio", f"{key}/async", arg, unavailable),
        _flow_case("actorflow/trio", "trio", f"{key}/async", arg, unavailable),
    ]
    if sync:
        cases.append(_flow_case("prefect", "sync", key, arg))
    cases.append(_flow_case("prefect/asyncio", "asyncio", f"{key}/async", arg))
    return cases


def _base(
    impl: str,
    mode: Mode,
    builder: Callable[[Any], Callable[[], Any]],
    arg: Callable[[int], Any] = _fns.inputs,
    unavailable: Callable[[], str | None] = _available,
) -> Case:
    return Case(impl, mode, lambda n: builder(arg(n)), unavailable)


def _concurrent_async(builders: tuple[Any, Any, Any], arg: Callable[[int], Any]) -> list[Case]:
    gather, anyio_group, nursery = builders
    return [
        _base("asyncio", "asyncio", gather, arg),
        _base("anyio/asyncio", "asyncio", anyio_group, arg),
        _base("anyio/trio", "trio", anyio_group, arg),
        _base("trio", "trio", nursery, arg),
    ]


_GATHERS = (base.asyncio_gather, base.anyio_group, base.trio_nursery)


def _submit_cases() -> list[Case]:
    return [
        *_lib_cases("submit"),
        _journal_case("sync", "submit"),
        _journal_case("asyncio", "submit/async"),
        *_concurrent_async(_GATHERS, _fns.inputs),
        _base("threadpool", "sync", base.threadpool_submit),
        _base("dask", "sync", base.dask_submit, unavailable=base.DaskCluster.missing),
    ]


def _map_cases() -> list[Case]:
    return [
        *_lib_cases("map"),
        _journal_case("sync", "map"),
        _journal_case("asyncio", "map/async"),
        *_concurrent_async(_GATHERS, _fns.inputs),
        _base("threadpool", "sync", base.threadpool_map),
        _base("dask", "sync", base.dask_map, unavailable=base.DaskCluster.missing),
    ]


def _gather_cases() -> list[Case]:
    return [
        _flow_case("actorflow/asyncio", "asyncio", "gather/asyncio"),
        _flow_case("actorflow/trio", "trio", "gather/trio"),
        _flow_case("prefect/asyncio", "asyncio", "gather/asyncio"),
        *_concurrent_async(_GATHERS, _fns.inputs),
    ]


def _sequential_cases(key: str) -> list[Case]:
    return [
        *_lib_cases(key),
        _base("plain", "sync", base.plain_calls),
        _base("plain/asyncio", "asyncio", base.plain_awaits),
    ]


def _zeros(n: int) -> list[int]:
    return [0] * n


def _cached_cases() -> list[Case]:
    return [
        _flow_case("actorflow", "sync", "cached", _zeros, cache_missing),
        _flow_case("prefect", "sync", "cached", _zeros),
        _base("plain", "sync", base.memoized_calls, _zeros),
    ]


def _transaction_cases() -> list[Case]:
    return [
        _flow_case("actorflow", "sync", "transaction"),
        # The same calls outside any transaction: the ratio is what a transaction costs a run.
        _flow_case("outside", "sync", "call"),
        _flow_case("prefect", "sync", "transaction"),
    ]


def _nested_cases() -> list[Case]:
    builders = (base.asyncio_nested, base.anyio_nested, base.trio_nested)
    return [
        *_lib_cases("nested", _fns.chunks),
        *_concurrent_async(builders, _fns.chunks),
        _base("threadpool", "sync", base.threadpool_nested, _fns.chunks),
    ]


def _fan_cases() -> list[Case]:
    return [
        *_lib_cases("fanout-fanin"),
        _base("asyncio", "asyncio", base.asyncio_fan),
        _base("trio", "trio", base.trio_fan),
        _base("threadpool", "sync", base.threadpool_fan),
        _base("dask", "sync", base.dask_fan, unavailable=base.DaskCluster.missing),
    ]


# -- startup: fresh processes ----------------------------------------------------------------------
# A script that defines a task and runs a trivial flow of it: what a first run needs.
_STARTUP_FLOW = """
from {lib} import flow, task

@task
def inc(x):
    return x + 1

@flow
def one():
    return inc(0)

assert one() == 1
"""


@functools.cache
def _process_env() -> dict[str, str]:
    # Bytecode caching on, as for an installed package (pip compiles its modules; an editable
    # checkout, or PYTHONDONTWRITEBYTECODE, would make every start compile actorflow from
    # source). The bytecode goes to a scratch directory, not into the source tree.
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(_scratch().name, "pycache")
    return env


def _process(code: str) -> Callable[[int], Callable[[], None]]:
    def make(n: int) -> Callable[[], None]:
        def run() -> None:
            subprocess.run(
                [sys.executable, "-c", code],
                check=True,
                stdin=subprocess.DEVNULL,
                env=_process_env(),
            )

        return run

    return make


def _startup_cases() -> list[Case]:
    return [
        Case("actorflow", "process", _process(_STARTUP_FLOW.format(lib="actorflow"))),
        Case("python", "process", _process("import asyncio")),
        Case(
            "prefect",
            "process",
            _process(_STARTUP_FLOW.format(lib="prefect")),
            prefect_missing,
            max_repeat=3,
        ),
    ]


# -- dask: actorflow's Dask task runner against the bare client ------------------------------
@functools.cache
def _dask_flow() -> Callable[[list[int]], list[int]]:
    import actorflow
    from actorflow.task_runners import DaskTaskRunner

    # Both sides use the same cluster, so that the ratio is the runner's own cost.
    try:
        runner = DaskTaskRunner(address=base.DASK.address)
    except TypeError:
        runner = DaskTaskRunner()
    return _flows.dask_flow(actorflow, runner)


def _dask_cases() -> list[Case]:
    def make(n: int) -> Callable[[], Any]:
        return functools.partial(_dask_flow(), _fns.inputs(n))

    return [
        Case("actorflow", "sync", make, dask_runner_missing),
        _base("dask", "sync", base.dask_submit, unavailable=base.DaskCluster.missing),
    ]


# -- queue: background runs, .delay() -> a worker process -> result --------------------------
def _queue_cases(latency: bool) -> list[Case]:
    from . import workloads_queue as wq

    def make(kind: str) -> Callable[[int], Callable[[], Any]]:
        def build(n: int) -> Callable[[], Any]:
            bench = wq.bench_for(kind)
            run = bench.one_by_one if latency else bench.results
            return functools.partial(run, _fns.inputs(n))

        return build

    return [
        Case("actorflow/sqlite", "sync", make("sqlite")),
        Case("actorflow/redis", "sync", make("redis"), wq.redis_missing),
        *(
            Case(peer, "sync", make(peer), functools.partial(wq.peer_missing, peer))
            for peer in wq.PEERS
        ),
    ]


def _none(n: int) -> None:
    return None


def _ones(n: int) -> list[int]:
    return [1] * n


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("submit", "N submits, then N results", _fns.incremented, _submit_cases),
        Workload("map", "one .map over N items", _fns.incremented, _map_cases, large=True),
        Workload(
            "gather", "N async task calls gathered", _fns.incremented, _gather_cases, large=True
        ),
        Workload(
            "call",
            "N sequential direct task calls in one flow",
            _fns.incremented,
            lambda: _sequential_cases("call"),
        ),
        Workload(
            "flowcall",
            "N sequential calls of a trivial flow",
            _fns.incremented,
            lambda: _sequential_cases("flowcall"),
        ),
        Workload("cached", "N calls answered by the cache", _ones, _cached_cases),
        Workload(
            "transaction",
            "N sequential direct task calls inside one transaction",
            _fns.incremented,
            _transaction_cases,
        ),
        Workload(
            "nested",
            f"N/{_fns.FANOUT} tasks each submitting {_fns.FANOUT} tasks",
            _fns.nested_total,
            _nested_cases,
        ),
        Workload(
            "fanout-fanin",
            "one source, N tasks taking its future, one sink taking N futures",
            _fns.fan_total,
            _fan_cases,
        ),
        Workload(
            "startup",
            "a fresh process defining a task and running a trivial flow of it",
            _none,
            _startup_cases,
            fixed_n=1,
        ),
        Workload(
            "dask", "N submits on a Dask cluster, then N results", _fns.incremented, _dask_cases
        ),
        Workload(
            "queue",
            "N runs delayed to one worker process, then every result read back",
            _fns.incremented,
            lambda: _queue_cases(latency=False),
        ),
        Workload(
            "queue-latency",
            "N runs one at a time on an idle worker process (per item: the mean latency)",
            _fns.incremented,
            lambda: _queue_cases(latency=True),
        ),
    )
}


def get_case(workload: str, impl: str) -> Case:
    """The case ``impl`` of ``workload``; raises KeyError naming the choices."""
    try:
        w = WORKLOADS[workload]
    except KeyError:
        raise KeyError(
            f"unknown workload {workload!r}; choose from {', '.join(WORKLOADS)}"
        ) from None
    cases = {c.impl: c for c in w.cases()}
    try:
        return cases[impl]
    except KeyError:
        raise KeyError(
            f"workload {workload!r} has no implementation {impl!r}; choose from {', '.join(cases)}"
        ) from None
