"""Task-runner overhead: actorflow's remote runners against the raw pools they use.

Every function returns the seconds ``n`` trivial task bodies took, on a warm pool, so that the
ratios compare per-task overhead and not start-up:

- ``dask_actorflow(n)`` / ``dask_raw(n)``: a flow on ``DaskTaskRunner`` against plain
  ``Client.map`` (or ``Client.submit`` in a loop, with ``how="submit"``) and ``gather``, on the
  same ``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``, started once.
- ``process_actorflow(n)`` / ``process_raw(n)``: a flow on ``ProcessPoolTaskRunner`` against a
  ``concurrent.futures.ProcessPoolExecutor`` with the same number of spawned workers.

The actorflow side times inside the flow, after a warm-up batch has started the pool's workers
(and connected the Dask client); the raw side times a warm pool the same way.
Run ``python -m benchmarks.workloads_runners [n]`` for a table of medians and ratios.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Literal

from actorflow import flow, task
from actorflow.task_runners import ProcessPoolTaskRunner

WORKERS = 2
How = Literal["map", "submit"]


def inc(x: int) -> int:
    return x + 1


inc_task = task(inc, name="inc")


def _timed_flow(runner: Any) -> Callable[[int, How], float]:
    @flow(name="bench-runner", task_runner=runner)
    def timed(n: int, how: How) -> float:
        inc_task.map(range(4 * WORKERS)).result()  # warm: workers started, client connected
        start = time.perf_counter()
        if how == "map":
            results = inc_task.map(range(n)).result()
        else:
            futures = [inc_task.submit(x) for x in range(n)]
            results = [future.result() for future in futures]
        elapsed = time.perf_counter() - start
        assert results[-1] == n
        return elapsed

    return timed  # type: ignore[no-any-return]  # the timer returns float; mypy sees Any


# -- Dask ------------------------------------------------------------------------------------------
class _Cluster:
    """One LocalCluster with worker processes for the whole run, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cluster: Any = None
        self.client: Any = None

    def get(self) -> tuple[Any, Any]:
        with self._lock:
            if self.cluster is None:
                from distributed import Client, LocalCluster

                self.cluster = LocalCluster(
                    n_workers=WORKERS,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
                self.client = Client(self.cluster, set_as_default=False)
                self.client.gather(self.client.map(inc, range(4 * WORKERS), pure=False))
            return self.cluster, self.client

    def close(self) -> None:
        with self._lock:
            if self.cluster is not None:
                self.client.close()
                self.cluster.close()
                self.cluster = self.client = None


DASK = _Cluster()


def dask_raw(n: int, how: How = "map") -> float:
    """Seconds for ``n`` bodies through plain ``Client.map``/``submit`` and ``gather``."""
    _, client = DASK.get()
    start = time.perf_counter()
    if how == "map":
        futures = client.map(inc, range(n), pure=False)
    else:
        futures = [client.submit(inc, x, pure=False) for x in range(n)]
    results = client.gather(futures)
    elapsed = time.perf_counter() - start
    assert results[-1] == n
    return elapsed


def dask_actorflow(n: int, how: How = "map") -> float:
    """Seconds for ``n`` task runs of a flow on ``DaskTaskRunner``, on the same cluster."""
    from actorflow.task_runners import DaskTaskRunner

    cluster, _ = DASK.get()
    # Like the raw client, the runner's client shares the cluster's event loop.
    return _timed_flow(DaskTaskRunner(cluster=cluster))(n, how)


# -- processes -------------------------------------------------------------------------------------
def process_raw(n: int, how: How = "map") -> float:
    """Seconds for ``n`` bodies through a warm ``ProcessPoolExecutor`` (spawned workers)."""
    with ProcessPoolExecutor(WORKERS, mp_context=get_context("spawn")) as executor:
        list(executor.map(inc, range(4 * WORKERS)))
        start = time.perf_counter()
        if how == "map":
            results = list(executor.map(inc, range(n)))
        else:
            futures = [executor.submit(inc, x) for x in range(n)]
            results = [future.result() for future in futures]
        elapsed = time.perf_counter() - start
    assert results[-1] == n
    return elapsed


def process_actorflow(n: int, how: How = "map") -> float:
    """Seconds for ``n`` task runs of a flow on ``ProcessPoolTaskRunner``."""
    return _timed_flow(ProcessPoolTaskRunner(WORKERS))(n, how)


# -- a table ---------------------------------------------------------------------------------------
def compare(n: int = 2000, repeat: int = 5) -> list[tuple[str, float, float, float]]:
    """``(pair, actorflow µs/task, raw µs/task, ratio)``: medians of interleaved repetitions."""
    pairs = [
        ("dask map", dask_actorflow, dask_raw, "map"),
        ("dask submit", dask_actorflow, dask_raw, "submit"),
        ("process map", process_actorflow, process_raw, "map"),
        ("process submit", process_actorflow, process_raw, "submit"),
    ]
    rows = []
    for label, ours, raw, how in pairs:
        ours_times, raw_times = [], []
        for _ in range(repeat):
            raw_times.append(raw(n, how))  # type: ignore[operator]  # raw is one of several callable shapes picked at runtime
            ours_times.append(ours(n, how))  # type: ignore[operator]  # ours is one of several callable shapes picked at runtime
        a, b = statistics.median(ours_times), statistics.median(raw_times)
        rows.append((label, a / n * 1e6, b / n * 1e6, a / b))
    return rows


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    try:
        for label, ours, raw, ratio in compare(n, repeat):
            print(
                f"{label:15} actorflow {ours:8.1f} µs/task   raw {raw:8.1f} µs/task   {ratio:.2f}x"
            )
    finally:
        DASK.close()


if __name__ == "__main__":
    # Import by name, so that workers unpickle ``inc`` by reference on both sides.
    from benchmarks import workloads_runners

    workloads_runners.main()
