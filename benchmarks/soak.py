"""A soak: mixed flows for a while (10 minutes by default), reporting memory and throughput over
time, as JSON and a plot. Opt-in, not part of the test suite::

    python -m benchmarks.soak                     # 600 s, results in benchmarks/results/
    python -m benchmarks.soak --seconds 60 --out /tmp/soak

Each round runs, in turn: a sync flow mapping 2,000 sync tasks, an async flow on asyncio mapping
2,000 async tasks, the same on trio, 50 small sync flows (a submit and a map of four), and a
flow of cached tasks (half the keys new, half hits, with persisted results). Every
``--every`` seconds it samples the resident set size (``/proc/self/statm``, Linux), the peak
(``ru_maxrss``), the live task and flow run objects, and the runs finished since the last sample.
The run fails (exit 1) if the resident size at the end exceeds 110% of the peak seen after the
first minute, or if any run object is still alive at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import actorflow
from actorflow import flow, task
from actorflow._core import FlowRun, TaskRun

MAPPED = 2_000
SMALL_FLOWS = 50


@task
def inc(x: int) -> int:
    return x + 1


@task
async def ainc(x: int) -> int:
    return x + 1


@flow
def sync_map() -> int:
    return len(inc.map(range(MAPPED)).result())


@flow
async def async_map() -> int:
    return len([await f for f in ainc.map(range(MAPPED))])


@flow
def small(i: int) -> int:
    return int(inc.submit(i).result() + sum(inc.map(range(4)).result()))


def make_cached(storage: str) -> Any:
    @task(
        result_storage=storage,
        cache_key_fn=lambda context, parameters: f"soak/{parameters['x']}",
    )
    def square(x: int) -> int:
        return x * x

    @flow
    def cached(round_: int) -> int:
        # Keys of this round and the last: half new, half hits.
        return len(square.map(range(round_ * 100, round_ * 100 + 200)).result())

    return cached


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def live_runs() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, (TaskRun, FlowRun)))


def soak(seconds: float, every: float, storage: str) -> dict[str, Any]:
    cached = make_cached(storage)
    samples: list[dict[str, float]] = []
    start = last = time.monotonic()
    runs = runs_at_last = 0
    round_ = 0
    samples.append({"t": 0.0, "rss": rss_mib(), "peak": peak_mib(), "runs_per_s": 0.0})
    while time.monotonic() - start < seconds:
        round_ += 1
        runs += sync_map() + 1
        runs += asyncio.run(async_map()) + 1
        runs += trio.run(async_map) + 1
        for i in range(SMALL_FLOWS):
            small(i)
        runs += SMALL_FLOWS * 6
        runs += cached(round_) + 1
        now = time.monotonic()
        if now - last >= every:
            gc.collect()
            samples.append(
                {
                    "t": round(now - start, 1),
                    "rss": round(rss_mib(), 1),
                    "peak": round(peak_mib(), 1),
                    "runs_per_s": round((runs - runs_at_last) / (now - last)),
                    "live_runs": live_runs(),
                }
            )
            print(json.dumps(samples[-1]), flush=True)
            last, runs_at_last = now, runs
    gc.collect()
    return {
        "seconds": round(time.monotonic() - start, 1),
        "rounds": round_,
        "runs": runs,
        "samples": samples,
        "live_runs_at_end": live_runs(),
        "rss_at_end": round(rss_mib(), 1),
    }


def plot(report: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure

    samples = report["samples"][1:]
    t = [s["t"] / 60 for s in samples]
    fig = Figure(figsize=(8, 5.5))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(t, [s["rss"] for s in samples], label="resident set (MiB)")
    top.plot(t, [s["peak"] for s in samples], label="peak (MiB)", linestyle="--")
    top.set_ylabel("MiB")
    top.set_ylim(bottom=0)
    top.legend(loc="lower right")
    top.set_title(f"actorflow {actorflow.__version__} soak: {report['runs']:,} runs")
    bottom.plot(t, [s["runs_per_s"] for s in samples], color="#2ca02c")
    bottom.set_ylabel("runs / s")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("ACTORFLOW_LOGGING_LEVEL", "WARNING")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as storage:
        report = soak(args.seconds, args.every, storage)
    (args.out / "soak.json").write_text(json.dumps(report, indent=1))
    if not args.no_plot:
        plot(report, args.out / "soak.png")
    after_first_minute = [s["peak"] for s in report["samples"] if s["t"] >= 60] or [
        report["samples"][-1]["peak"]
    ]
    mark = after_first_minute[0]
    ok = report["rss_at_end"] <= 1.10 * mark and report["live_runs_at_end"] == 0
    print(
        f"{report['runs']:,} runs in {report['seconds']} s; resident {report['rss_at_end']} MiB "
        f"at the end, peak {mark} MiB after the first minute; "
        f"{report['live_runs_at_end']} run objects alive: {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
