"""The README's performance section, written from one harness run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import report
from .api import Measurement

_BASELINES = """\
- `asyncio`: bare `asyncio.gather` of N `async def f(x): return x + 1` coroutines (in `nested`,
  gathers of gathers; in `fanout-fanin`, the middles await a source task).
- `anyio/asyncio`, `anyio/trio`: an anyio task group, `start_soon` N times.
- `trio`: a bare `trio.open_nursery()`, `start_soon` N times.
- `threadpool`: a `ThreadPoolExecutor` (as many workers as actorflow's default runner), N
  `submit`s of a trivial sync function then N `result()`s (`map`: `executor.map`); the pool is
  created inside the timed region, as a flow run creates its runner.
- `dask`: `distributed.Client` on an in-process `LocalCluster` (1 worker, 2 threads), N
  `submit(..., pure=False)` then `gather`.
- `plain`, `plain/asyncio`: the same function called (or awaited) N times in a loop, no runtime
  at all; `cached` uses `functools.cache`.
- `outside` (in `transaction`): actorflow's `call` flow, the same N direct calls with no
  transaction around them, so `actorflow ÷ outside` is what a transaction costs each run.
- `python`: a fresh `python -c "import asyncio"`. Every `startup` process runs with bytecode
  caching on (into a scratch `PYTHONPYCACHEPREFIX`), after one untimed start, as an installed
  package would: pip compiles the modules it installs, which an editable checkout does not.
- `prefect`, `prefect/asyncio`: the very same flow source as actorflow's with the import changed
  (Prefect 3, ephemeral API, results in a temporary `PREFECT_HOME`)."""


def render(
    ms: Sequence[Measurement],
    meta: dict[str, Any],
    plot_link: str | None,
    command: str,
) -> str:
    targets = report.targets(ms)
    unavailable = sorted(
        {(m.workload, m.impl, m.status, m.reason or "") for m in ms if not m.ok},
    )
    lines = [
        "## Performance",
        "",
        "Per-task overhead, measured by the benchmark harness in `benchmarks/`: the median "
        "wall-clock time of one run (over several repetitions) divided by N, for trivial task "
        "bodies, so the figure is the runtime's own cost. `±` is half the range of the "
        "repetitions as a percentage of the median. Peak memory comes from one more repetition "
        "under `tracemalloc` (for 1,000,000 items: peak RSS growth in a fresh process), above "
        "the inputs. actorflow runs with its run journal off (`ACTORFLOW_JOURNAL=off`), except "
        "in the `actorflow+journal` cases: a script has it on by default, which adds the "
        "journal's own cost (see the run journal section).",
        "",
        f"Machine: {meta.get('machine', 'this machine')}; actorflow at "
        f"`{meta.get('commit') or '?'}`; shared machines make small N noisy. "
        + (
            "Measured by the runs below."
            if meta.get("report_only")
            else f"Measured {meta.get('date', '')}, load average {meta.get('load_start', '?')} "
            f"at the start and {meta.get('load_end', '?')} at the end."
        ),
        "",
    ]
    for earlier in meta.get("merged", []):
        lines[-1:-1] = [
            f"Run of {earlier.get('date', '?')} (`{earlier.get('file', '?')}`, "
            f"load average {earlier.get('load_start', '?')} to {earlier.get('load_end', '?')}).",
        ]
    if plot_link:
        lines += [f"![per-task cost against N, log-log]({plot_link})", ""]
    lines += [
        "### Targets",
        "",
        report.target_table(targets),
        "",
        "### actorflow ÷ baseline (per-task cost at the largest N both ran; below 1 is cheaper)",
        "",
        report.ratio_table(ms),
        "",
        "### Per-task cost (µs, median) and peak memory",
        "",
        report.cost_tables(ms),
        "",
        "### Baselines",
        "",
        _BASELINES,
        "",
    ]
    if unavailable:
        lines += ["### Not measured in this run", ""]
        lines += [f"- `{w}` / `{i}`: {status}: {reason}" for w, i, status, reason in unavailable]
        lines.append("")
    lines += [
        "### Reproduce",
        "",
        "```sh",
        command,
        "```",
        "",
        "`python -m benchmarks --help` lists the options: `--quick` (tiny N, one repetition), "
        "`--full` (N from 10 to 100,000, and 1,000,000 for `map` and `gather`), `-w` / `-i` / `-n` "
        "to choose workloads, implementations and sizes, `--profile` for a cProfile of "
        "actorflow's side. The Prefect columns need Prefect installed next to actorflow in one "
        "virtualenv (`pip install prefect -e .`); it is not one of actorflow's dependencies. "
        "Where several commands are shown, the last one merged the earlier ones' results "
        "(`--merge`; Prefect's come from a virtualenv that holds it). "
        "Figures for machines are written to `benchmarks/results/results.json`.",
        "",
    ]
    return "\n".join(lines)
