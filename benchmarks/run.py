"""The harness's command line: ``python -m benchmarks`` or ``python benchmarks/run.py``."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import report
from benchmarks.api import Measurement, frozen_heap, run_workload
from benchmarks.workloads import WORKLOADS, Case, Workload, close_resources

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLOT_NAME = "per-task-cost.png"

#: (sizes, repetitions, seconds allowed per implementation and size) for each mode.
MODES = {
    "quick": ([10], 1, 5.0),
    "default": ([10, 1_000, 10_000], 5, 20.0),
    "full": ([10, 100, 1_000, 10_000, 100_000], 5, 60.0),
}
LARGE_N = 1_000_000
#: The estimate of one run that still goes ahead at LARGE_N (it gets as many repetitions as the
#: ordinary budget allows, at least one).
LARGE_BUDGET = 300.0
#: Above this size, memory is measured as peak RSS in a fresh process, not with tracemalloc.
TRACEMALLOC_MAX_N = 100_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Per-task overhead of actorflow against bare asyncio, anyio, trio, "
        "threads, Dask and (when installed) Prefect.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="N=10, one repetition: a smoke run")
    mode.add_argument(
        "--full",
        action="store_true",
        help="N from 10 to 100,000 (1,000,000 for map and gather), for the README",
    )
    p.add_argument("-w", "--workload", action="append", help="only these workloads")
    p.add_argument(
        "-i",
        "--impl",
        action="append",
        help="only these implementations ('actorflow' = all of its)",
    )
    p.add_argument("-n", type=int, action="append", dest="sizes", help="sizes (repeatable)")
    p.add_argument("--repeat", type=int, help="repetitions per measurement")
    p.add_argument("--budget", type=float, help="seconds per implementation and size")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory repetition")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--out", type=Path, default=HERE / "results", help="JSON and PNG go here")
    p.add_argument("--readme", type=Path, help="write the README performance section here")
    p.add_argument(
        "--profile", action="store_true", help="cProfile actorflow's side at the largest N"
    )
    p.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="add the measurements of an earlier results.json (e.g. from a virtualenv with "
        "Prefect); this run's own win where both measured",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: write the tables, plot and README from --merge files",
    )
    p.add_argument("--list", action="store_true", help="list workloads and implementations")
    return p


def _selected(case: Case, impls: Sequence[str] | None) -> bool:
    return not impls or any(case.impl == i or case.impl.startswith(i + "/") for i in impls)


def _sizes(workload: Workload, base: list[int], full: bool, chosen: bool) -> list[int]:
    if workload.fixed_n is not None:
        return [workload.fixed_n]
    if full and workload.large and not chosen:
        return [*base, LARGE_N]
    return base


def _meta(argv: Sequence[str]) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("actorflow", "anyio", "trio", "distributed", "prefect", "attrs"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "versions": versions,
        "argv": list(argv),
        "load_start": _load(),
        "commit": _commit(),
    }


def _commit() -> str | None:
    """The checkout measured: its commit, marked ``+changes`` when the tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def _load() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def list_cases() -> str:
    lines = []
    for name, w in WORKLOADS.items():
        lines.append(f"{name}: {w.description}")
        for case in w.cases():
            reason = case.unavailable()
            lines.append(f"    {case.impl:<18} {case.mode:<8} {'' if reason is None else reason}")
    return "\n".join(lines)


def measure_all(
    workloads: Sequence[str],
    impls: Sequence[str] | None,
    sizes: list[int],
    *,
    full: bool,
    sizes_chosen: bool,
    repeat: int,
    budget: float,
    memory: bool,
    log: Any = None,
    journal: Path | None = None,
) -> list[Measurement]:
    """Every selected (workload, implementation, N); larger N are skipped once the estimate of
    one run exceeds the budget.

    Each measurement is appended to ``journal`` (JSON lines) as soon as it is taken, so that a
    run that is stopped keeps what it measured (``--merge`` reads the file back). A single
    measurement that hangs for ``HANG_FACTOR`` budgets ends the process with exit status 3.
    """
    from benchmarks._memory import rss_peak_bytes

    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        journal.write_text("")
    jobs = [
        (name, case)
        for name in workloads
        for case in WORKLOADS[name].cases()
        if _selected(case, impls)
    ]
    # Prefect's cases go last: its API server, once started, keeps running (and using the CPU)
    # until the harness ends, and must not weigh on the other measurements.
    jobs.sort(key=lambda job: job[1].is_prefect)
    out: list[Measurement] = []
    for name, case in jobs:
        workload = WORKLOADS[name]
        ns = _sizes(workload, sizes, full, sizes_chosen)
        stop: str | None = None
        for i, n in enumerate(ns):
            if stop is not None:
                m = Measurement(name, case.impl, n, "skipped", stop)
            else:
                with _watchdog(f"{name} / {case.impl} / N={n:,}", HANG_FACTOR * budget, log):
                    m = run_workload(
                        name,
                        n,
                        case.impl,
                        repeat=repeat,
                        memory=memory and n <= TRACEMALLOC_MAX_N,
                        budget=budget,
                    )
                    if m.ok and memory and n > TRACEMALLOC_MAX_N and case.mode != "process":
                        m = _with_rss(m, rss_peak_bytes)
                if not m.ok:
                    stop = f"{m.status} at a smaller N" if m.status != "unavailable" else m.reason
                elif i + 1 < len(ns) and m.timing is not None:
                    estimate = m.timing.median * ns[i + 1] / n
                    limit = LARGE_BUDGET if ns[i + 1] >= LARGE_N else budget
                    if estimate > limit:
                        stop = (
                            f"one run at N={ns[i + 1]:,} would take about {estimate:,.0f} s, "
                            f"over the {limit:g} s budget"
                        )
            out.append(m)
            if journal is not None:
                with journal.open("a") as f:
                    f.write(json.dumps(m.to_dict()) + "\n")
            if log is not None:
                print(report.summary_line(m), file=log, flush=True)
            if m.status == "unavailable":
                break  # one line says it; no point repeating it for every N
    return out


HANG_FACTOR = 20  # budgets one measurement may take before it counts as hung


@contextlib.contextmanager
def _watchdog(what: str, seconds: float, log: Any) -> Iterator[None]:
    """End the process if the body runs for more than ``seconds`` (a deadlocked run cannot be
    interrupted from inside); the journal keeps what was measured before it."""

    def fire() -> None:
        print(f"{what}: no result after {seconds:g} s, giving up (hung?)", file=log or sys.stderr)
        os._exit(3)

    timer = threading.Timer(max(seconds, 600.0), fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _with_rss(m: Measurement, rss: Any) -> Measurement:
    import attrs

    assert m.timing is not None
    try:
        peak = rss(m.workload, m.impl, m.n)
    except Exception as exc:  # memory is a bonus: keep the timing
        return attrs.evolve(m, reason=f"memory not measured: {exc}")
    return attrs.evolve(m, timing=attrs.evolve(m.timing, peak_bytes=peak), memory_method="rss")


@contextlib.contextmanager
def quiet_run_logs() -> Iterator[None]:
    """Run logs at WARNING while measuring, in this process and the ones it starts, as Prefect
    runs with PREFECT_LOGGING_LEVEL: the cost of the engine, not of a console line per task
    run (both log one at INFO). What the caller had is restored after."""
    logger = logging.getLogger("actorflow")
    level, env = logger.level, os.environ.get("ACTORFLOW_LOGGING_LEVEL")
    if env is None:
        os.environ["ACTORFLOW_LOGGING_LEVEL"] = "WARNING"
    logger.setLevel(env or logging.WARNING)
    try:
        yield
    finally:
        if env is None:
            os.environ.pop("ACTORFLOW_LOGGING_LEVEL", None)
        # Unset, actorflow's logger takes its default (INFO) at the first run, which may have
        # been one measured here: give it that default rather than the root logger's.
        logger.setLevel(level or env or logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.list:
        with quiet_run_logs():  # listing probes each implementation, the cache one with a flow
            print(list_cases())
        return 0
    mode = "quick" if args.quick else "full" if args.full else "default"
    sizes, repeat, budget = MODES[mode]
    sizes = sorted(args.sizes) if args.sizes else sizes
    repeat = args.repeat or repeat
    budget = args.budget or budget
    names = args.workload or list(WORKLOADS)
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    meta = _meta(argv)
    meta["report_only"] = args.report_only
    ms: list[Measurement] = []
    try:
        with frozen_heap(), quiet_run_logs():
            if not args.report_only:
                ms = measure_all(
                    names,
                    args.impl,
                    sizes,
                    full=mode == "full",
                    sizes_chosen=bool(args.sizes),
                    repeat=repeat,
                    budget=budget,
                    memory=not args.no_memory,
                    log=sys.stderr,
                    journal=args.out / "measurements.jsonl",
                )
            if args.profile:
                _profile(names, args.impl, sizes, args.out)
    finally:
        close_resources()
    meta["load_end"] = _load()
    commands = []
    for path in args.merge:
        earlier = _load_results(path)
        ms = merge(ms, [Measurement.from_dict(d) for d in earlier["measurements"]])
        meta.setdefault("merged", []).append({"file": str(path), **earlier["meta"]})
        if earlier["meta"].get("argv") is not None:
            commands.append(_command(earlier["meta"]["argv"]))
    commands.append(_command(argv))
    if args.report_only and meta.get("merged"):
        # Nothing was measured here: the code measured is that of the merged runs.
        commits = {earlier.get("commit") for earlier in meta["merged"]}
        meta["commit"] = ", ".join(sorted(c for c in commits if c)) or None
    targets = report.targets(ms)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "measurements": [m.to_dict() for m in ms],
                "ratios": report.ratios(ms),
                "targets": targets,
            },
            indent=1,
        )
    )
    print(report.cost_tables(ms), end="\n\n")
    print(report.ratio_table(ms), end="\n\n")
    print(report.target_table(targets))
    png = None
    if not args.no_plot:
        from benchmarks.plot import plot

        png = plot(ms, args.out / PLOT_NAME)
    if args.readme is not None:
        _write_readme(args.readme, ms, meta, png, commands)
    print(f"\nresults: {args.out / 'results.json'}" + (f", plot: {png}" if png else ""))
    return 0


def _load_results(path: Path) -> dict[str, Any]:
    """A results.json, or the measurements.jsonl journal of a run that did not finish."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return {"meta": {"argv": None, "date": "an unfinished run"}, "measurements": lines}
    return json.loads(text)  # type: ignore[no-any-return]  # json.loads is untyped


def merge(ours: Sequence[Measurement], earlier: Sequence[Measurement]) -> list[Measurement]:
    """``ours`` plus what ``earlier`` measured and ``ours`` did not.

    A timing beats the lack of one, so that Prefect's figures from another virtualenv survive
    this run's "not installed here"; where both timed, ours win.
    """
    out = {(m.workload, m.impl, m.n): m for m in ours}
    for m in earlier:
        key = (m.workload, m.impl, m.n)
        mine = out.get(key)
        if mine is None or (m.ok and not mine.ok):
            out[key] = m
    # An implementation timed by either run needs no "unavailable" line.
    timed = {(m.workload, m.impl) for m in out.values() if m.ok}
    kept = [m for m in out.values() if m.ok or (m.workload, m.impl) not in timed]
    workloads = list(WORKLOADS)
    ranks = {w: [c.impl for c in WORKLOADS[w].cases()] for w in workloads}

    def rank(m: Measurement) -> tuple[int, int, int]:
        impls = ranks.get(m.workload, [])
        return (
            workloads.index(m.workload) if m.workload in workloads else len(workloads),
            impls.index(m.impl) if m.impl in impls else len(impls),
            m.n,
        )

    return sorted(kept, key=rank)


def _command(argv: Sequence[str]) -> str:
    return ("python -m benchmarks " + shlex.join(argv)).strip()


def _write_readme(
    path: Path,
    ms: Sequence[Measurement],
    meta: dict[str, Any],
    png: Path | None,
    commands: list[str],
) -> None:
    from benchmarks.readme import render

    link = None
    if png is not None:
        # The plot sits beside the section (results/ is not kept in git), linked from the
        # repository's root, where the main README lives.
        target = path.parent / PLOT_NAME
        if png.resolve() != target.resolve():
            shutil.copyfile(png, target)
        try:
            link = target.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            link = target.name
    path.write_text(render(ms, meta, link, "\n".join(commands)))


def _profile(
    names: Sequence[str], impls: Sequence[str] | None, sizes: list[int], out: Path
) -> None:
    from benchmarks._profile import profile_case

    for name in names:
        workload = WORKLOADS[name]
        if workload.fixed_n is not None:
            continue
        for case in workload.cases():
            if not case.is_actorflow or not _selected(case, impls) or case.unavailable():
                continue
            n = max(sizes)
            file = out / f"profile-{name}-{case.impl.replace('/', '-')}-{n}.prof"
            print(f"\n== cProfile: {name} / {case.impl} / N={n:,} ({file.name}) ==")
            print(profile_case(name, case.impl, n, file))


if __name__ == "__main__":
    raise SystemExit(main())
