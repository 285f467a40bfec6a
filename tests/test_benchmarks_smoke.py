"""The benchmark harness runs end to end at tiny N, so that it never rots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the harness lives beside the package, not inside it
    sys.path.insert(0, str(ROOT))

import actorflow  # noqa: E402
from benchmarks import WORKLOADS, Measurement, TimingResult, run_workload, time_flow  # noqa: E402
from benchmarks.plot import plot  # noqa: E402
from benchmarks.readme import render  # noqa: E402
from benchmarks.run import main, merge  # noqa: E402

# Baselines that need nothing optional: they must always measure.
ALWAYS = {"asyncio", "anyio/asyncio", "anyio/trio", "trio", "threadpool", "plain", "python"}


def test_quick_run_measures_every_workload(tmp_path: Path) -> None:
    readme = tmp_path / "README-performance.md"
    # The plot of every panel takes seconds to draw: test_plot_and_readme_section draws a few.
    args = ["--quick", "--no-plot", "--out", str(tmp_path), "--readme", str(readme)]
    assert main(args) == 0

    data = json.loads((tmp_path / "results.json").read_text())
    seen = {(m["workload"], m["impl"]): m for m in data["measurements"]}
    for name, workload in WORKLOADS.items():
        for case in workload.cases():
            m = seen[name, case.impl]
            assert m["status"] in ("ok", "unavailable"), (name, case.impl, m["reason"])
            if m["status"] == "unavailable":
                assert m["reason"], (name, case.impl)
            else:
                assert m["per_item_us"] > 0 and len(m["times_s"]) == 1
            if case.impl in ALWAYS:
                assert m["status"] == "ok", (name, case.impl, m["reason"])
    # actorflow's own side runs wherever its features exist.
    assert seen["submit", "actorflow"]["status"] == "ok"
    assert seen["gather", "actorflow/trio"]["status"] == "ok"
    assert seen["queue", "actorflow/sqlite"]["status"] == "ok"
    assert seen["queue-latency", "actorflow/redis"]["status"] == "ok"
    assert {t["target"] for t in data["targets"]} >= {
        "gather on asyncio ≤ 3x asyncio.gather",
        "sync submit ≤ 3x ThreadPoolExecutor",
    }

    text = readme.read_text()
    assert text.startswith("## Performance")
    assert "python -m benchmarks --quick --no-plot" in text
    assert "| sync submit ≤ 3x ThreadPoolExecutor |" in text


@pytest.fixture
def never(monkeypatch: pytest.MonkeyPatch) -> str:
    """A workload whose only implementation is never available here."""
    from benchmarks.workloads import Case, Workload

    case = Case("actorflow", "sync", lambda n: lambda: None, lambda: "never available")
    monkeypatch.setitem(
        WORKLOADS, "never", Workload("never", "nothing", lambda n: None, lambda: [case])
    )
    return "never"


def test_plot_and_readme_section(tmp_path: Path, never: str) -> None:
    ms = [
        run_workload("gather", n, impl, repeat=1)
        for impl in ("actorflow/asyncio", "asyncio")
        for n in (10, 30)
    ]
    ms.append(run_workload(never, 10))
    assert all(m.ok for m in ms[:-1])
    png = plot(ms, tmp_path / "per-task-cost.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot(ms[-1:], tmp_path / "none.png") is None  # nothing timed, nothing drawn

    text = render(ms, {"date": "today"}, "benchmarks/per-task-cost.png", "python -m benchmarks")
    assert "![per-task cost against N, log-log](benchmarks/per-task-cost.png)" in text
    assert "gather on asyncio ≤ 3x asyncio.gather" in text
    assert f"`{never}` / `actorflow`: unavailable:" in text


def test_time_flow_times_sync_and_async_flows() -> None:
    @actorflow.task
    def inc(x: int) -> int:
        return x + 1

    @actorflow.flow
    def sync_flow(n: int) -> list[int]:
        return [f.result() for f in [inc.submit(i) for i in range(n)]]

    @actorflow.flow
    async def async_flow(n: int) -> int:
        return n

    result = time_flow(sync_flow, 5, repeat=3, n=5, memory=True)
    assert isinstance(result, TimingResult)
    assert len(result.times) == 3 and result.n == 5
    assert result.best <= result.median <= result.worst
    assert result.per_item_us == pytest.approx(result.median / 5 * 1e6)
    assert result.peak_bytes is not None and result.peak_bytes > 0
    assert result.name == "sync-flow"

    on_trio = time_flow(async_flow, 1, repeat=2, backend="trio", warmup=False)
    assert len(on_trio.times) == 2 and on_trio.peak_bytes is None
    with pytest.raises(ValueError, match="backend"):
        time_flow(async_flow, 1, backend="curio")


def test_run_workload_reports_rather_than_raises(never: str) -> None:
    m = run_workload(never, 10)
    assert m.status == "unavailable" and m.reason and m.timing is None

    m = run_workload("map", 20, "actorflow/trio", repeat=2)
    assert m.ok and m.timing is not None and m.timing.n == 20 and len(m.timing.times) == 2

    with pytest.raises(KeyError, match="no implementation 'nope'"):
        run_workload("map", 10, "nope")
    with pytest.raises(KeyError, match="unknown workload"):
        run_workload("nope", 10)


def test_runs_as_a_script(tmp_path: Path) -> None:
    script = ROOT / "benchmarks" / "run.py"
    args = ["--quick", "-w", "call", "-i", "plain", "--no-plot", "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    assert "| `plain` |" in proc.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    # "-i plain" picks the whole family: plain and plain/asyncio.
    assert [(m["workload"], m["impl"], m["status"]) for m in data["measurements"]] == [
        ("call", "plain", "ok"),
        ("call", "plain/asyncio", "ok"),
    ]


def test_merge_keeps_timings_from_another_environment() -> None:
    ours = [
        run_workload("call", 10, "plain", repeat=1),
        Measurement("call", "prefect", 10, "unavailable", "not installed"),
    ]
    earlier = [
        Measurement.from_dict(run_workload("call", 10, "plain/asyncio", repeat=1).to_dict()),
        Measurement.from_dict(run_workload("call", 20, "plain", repeat=2).to_dict()),
        Measurement("call", "plain", 10, "error", "stale"),
    ]
    merged = merge(ours, earlier)
    assert [(m.impl, m.n, m.status) for m in merged] == [
        ("prefect", 10, "unavailable"),
        ("plain", 10, "ok"),
        ("plain", 20, "ok"),
        ("plain/asyncio", 10, "ok"),
    ]
    assert merged[1] is ours[0]  # where both measured, this run wins
    assert merged[2].timing is not None and len(merged[2].timing.times) == 2


def test_service_benchmark_measures_both_endpoints(tmp_path: Path) -> None:
    """``python -m benchmarks.service`` at a tiny size: the example service in a process of its
    own, both endpoints measured, the ratio and verdict written."""
    from benchmarks import service

    args = ["--requests", "20", "--rounds", "1", "--concurrency", "4", "--out", str(tmp_path)]
    assert service.main(args) == 0
    data = json.loads((tmp_path / "results.json").read_text())
    endpoints = data["endpoints"]
    assert set(endpoints) == set(service.ENDPOINTS)
    for got in endpoints.values():
        assert got["requests"] == 20
        assert got["requests_per_s"] > 0 and 0 < got["p50_ms"] <= got["p99_ms"]
    assert data["p50_ratio"] > 0 and data["verdict"] in ("met", "missed")
