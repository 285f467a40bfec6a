"""Load: 100,000 mapped runs with results, three times, then 1,000 small flows in a row, in a
fresh process (on Linux: it reads /proc/self/statm). Memory stays within 10% of its high-water
mark after the first two big runs (CPython's allocator keeps what it once took, so that mark, not
the start, is the baseline), and no run object outlives its flow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import child_env, run_python

SCRIPT = r"""
import gc, json, resource, sys, time
from actorflow import flow, task
from actorflow._core import FlowRun, TaskRun

@task
def inc(x):
    return x + 1

@flow
def big(n):
    return inc.map(range(n)).result()  # every run's result comes back

@flow
def small(i):
    return inc.submit(i).result() + sum(inc.map(range(4)).result())

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

figures = {"rss": [], "peak": [], "seconds": []}
def mark(label):
    gc.collect()
    figures["rss"].append([label, round(rss_mib(), 1)])
    figures["peak"].append([label, round(peak_mib(), 1)])

start = time.perf_counter()
mark("start")
for i in range(3):
    t = time.perf_counter()
    results = big(100_000)
    assert results == list(range(1, 100_001))
    del results
    figures["seconds"].append(["big", round(time.perf_counter() - t, 2)])
    mark(f"after big run {i + 1}")
t = time.perf_counter()
for i in range(1_000):
    assert small(i) == i + 1 + 10
figures["seconds"].append(["1,000 small flows", round(time.perf_counter() - t, 2)])
mark("after 1,000 small flows")
figures["live runs"] = sum(1 for o in gc.get_objects() if isinstance(o, (TaskRun, FlowRun)))
print(json.dumps(figures))
"""


@pytest.mark.slow
def test_memory_stays_at_its_high_water_mark_under_repeated_load() -> None:
    result = run_python(SCRIPT, timeout=120, ACTORFLOW_LOGGING_LEVEL="WARNING")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(figures))  # the figures, for the record (pytest -s)
    peak = dict(figures["peak"])
    rss = dict(figures["rss"])
    mark = peak["after big run 2"]
    assert peak["after 1,000 small flows"] <= 1.10 * mark, figures
    assert rss["after big run 3"] <= 1.10 * mark, figures
    assert rss["after 1,000 small flows"] <= 1.10 * mark, figures
    assert figures["live runs"] == 0, figures


def test_the_soak_benchmark_runs(tmp_path: Path) -> None:
    # The 10-minute soak is opt-in (python -m benchmarks.soak); a second of it keeps it working.
    root = Path(__file__).resolve().parent.parent
    args = ["--seconds", "1", "--every", "0.2", "--no-plot", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", *args],
        cwd=root,
        env=child_env(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "soak.json").read_text())
    assert report["runs"] > 0 and report["live_runs_at_end"] == 0
    assert len(report["samples"]) >= 2


def test_an_event_loop_that_ran_flows_is_not_kept_alive() -> None:
    import asyncio
    import gc
    import weakref

    from actorflow import flow, task

    seen: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    @task
    async def echo(x: int) -> int:
        return x

    @flow
    async def host() -> int:
        seen.add(asyncio.get_running_loop())
        return await echo.submit(1)

    for _ in range(20):  # a service or a test suite may run asyncio.run per job
        assert asyncio.run(host()) == 1
    gc.collect()
    assert len(seen) == 0
