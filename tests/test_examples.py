"""Every script in examples/ runs and does what its snippet in the seed document promises.

Each example exposes ``main()``; most tests load the file as a fresh module and call it. The Dask
example and a few ``__main__`` blocks run as real subprocesses. Examples whose feature has not
landed yet (caching, the Dask runner, background tasks) are skipped only while that feature is
missing, so they start running as soon as it exists.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from actorflow import RunRecorder, State

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LoadExample = Callable[[str], ModuleType]


# -- helpers ------------------------------------------------------------------------------------
@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch) -> LoadExample:
    """Import ``examples/<name>.py`` afresh (its ``__main__`` block does not run), always under
    one module name per example, as another process importing it would."""

    def load(name: str) -> ModuleType:
        module_name = f"actorflow_example_{name}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        return module

    return load


def run_script(name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python examples/<name>.py`` the way a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=EXAMPLES.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def max_concurrent(recorder: RunRecorder, task_name: str) -> int:
    """The largest number of ``task_name`` runs that were Running at the same moment."""
    running: set[str] = set()
    peak = 0
    for e in recorder.events:
        if e.run_kind != "task" or not e.run_name.startswith(task_name):
            continue
        if e.state.is_running():
            running.add(e.run_id)
            peak = max(peak, len(running))
        elif e.state.is_final():
            running.discard(e.run_id)
    return peak


def flow_final_states(recorder: RunRecorder) -> list[State[Any]]:
    return [e.state for e in recorder.events if e.run_kind == "flow" and e.state.is_final()]


# -- the examples directory as a whole ----------------------------------------------------------
def _example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.py"))


def test_every_example_has_main_guard_and_readme_entry() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    names = _example_names()
    assert len(names) >= 17
    for name in names:
        source = (EXAMPLES / f"{name}.py").read_text()
        assert source.startswith('"""'), f"{name}.py needs a module docstring"
        assert "\ndef main(" in source, f"{name}.py needs a main() for its test"
        assert '\nif __name__ == "__main__":\n' in source, f"{name}.py needs a __main__ guard"
        assert not re.search(r"^\s*(from|import) prefect", source, re.M), (
            f"{name}.py imports prefect"
        )
        assert f"`{name}.py`" in readme, f"examples/README.md does not list {name}.py"


# -- tasks, submit, map, futures -----------------------------------------------------------------
def test_explain_tasks_logs_prints(
    load_example: LoadExample, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="actorflow")
    state = load_example("explain_tasks").main()
    assert state.is_completed()
    messages = [r.getMessage() for r in caplog.records]
    assert any("run any python code here!" in m for m in messages), messages
    assert any("but maybe just a little bit" in m for m in messages), messages


@pytest.mark.parametrize("name", ["elevator_submit", "elevator_map"])
def test_elevator_on_the_thread_pool(
    name: str, load_example: LoadExample, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_example(name)
    with RunRecorder() as recorder:
        states = module.main()
    assert len(states) == 10
    assert all(s.is_completed() for s in states), states
    assert [s.name for s in flow_final_states(recorder)] == ["Completed"]
    assert max_concurrent(recorder, "stop_at_floor") > 1  # the floors really overlapped
    out = capsys.readouterr().out
    for floor in range(1, 11):
        assert f"elevator stops on floor {floor}\n" in out


@pytest.mark.slow
def test_elevator_on_dask_as_a_script() -> None:
    # A LocalCluster spawns worker processes, which re-import the script: run it for real.
    proc = run_script("elevator_dask", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "10 of 10 floors completed" in proc.stdout


def test_handling_futures(load_example: LoadExample, capsys: pytest.CaptureFixture[str]) -> None:
    (state,) = load_example("handling_futures").main()
    assert state.is_completed()
    assert state.result() == "sup"
    assert capsys.readouterr().out == "sup\n"


def test_wait_multiple_and_single(load_example: LoadExample) -> None:
    by_flow = load_example("wait_multiple").main()
    assert set(by_flow) == {"my-workflow-multiple", "my-workflow-single"}
    assert [s.result() for s in by_flow["my-workflow-multiple"]] == ["sup"] * 10
    assert [s.result() for s in by_flow["my-workflow-single"]] == ["sup"]


def test_unmapped_sum(load_example: LoadExample) -> None:
    assert load_example("unmapped_sum").main() == [10, 11, 12]


@pytest.mark.parametrize("busy_upstreams", [False, True])
def test_wait_for_dag_order(
    busy_upstreams: bool, load_example: LoadExample, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_example("wait_for_dag")
    if busy_upstreams:
        # Give a and b some work, so that a c (or d) started too early would show in the order.
        def busy() -> None:
            time.sleep(0.02)

        monkeypatch.setattr(module.task_a, "fn", busy)
        monkeypatch.setattr(module.task_b, "fn", busy)
    events = module.main()

    def at(task_name: str, state_name: str) -> int:
        return events.index((task_name, state_name))

    for name in ("task_a", "task_b", "task_c", "task_d"):
        assert (name, "Completed") in events, events
    assert at("task_c", "Running") > at("task_a", "Completed")
    assert at("task_c", "Running") > at("task_b", "Completed")
    assert at("task_d", "Running") > at("task_c", "Completed")
    if busy_upstreams:
        # a and b had no order between them: both ran at once.
        assert at("task_b", "Running") < at("task_a", "Completed")
        assert at("task_a", "Running") < at("task_b", "Completed")


def test_batch_failures(load_example: LoadExample, capsys: pytest.CaptureFixture[str]) -> None:
    with RunRecorder() as recorder:
        state = load_example("batch_failures").main()
    # As in Prefect, the flow's state follows its return value: the failures were handled.
    assert state.is_completed()
    assert sorted(state.result()) == ["Processed 1", "Processed 3", "Processed 5"]
    failed = [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_failed()]
    assert sorted(str(s.result(raise_on_failure=False)) for s in failed) == [
        "Cannot process negative value: -2",
        "Cannot process negative value: -4",
    ]
    out = capsys.readouterr().out
    assert "Processed 3 items successfully\n" in out
    assert "Failed to process 2 items\n" in out


def test_model_evaluation(load_example: LoadExample, capsys: pytest.CaptureFixture[str]) -> None:
    by_name = load_example("model_evaluation").main()
    expected = {
        f"train on {dataset} with {model}": (dataset, model)
        for dataset in ("customers", "products", "orders")
        for model in ("random_forest", "gradient_boosting")
    }
    assert set(by_name) == set(expected)
    scores = []
    for name, state in by_name.items():
        result = state.result()
        assert (result["dataset"], result["model"]) == expected[name]
        scores.append(result["score"])
    best = max(by_name.values(), key=lambda s: s.result()["score"]).result()
    assert f"Best model: {best}" in capsys.readouterr().out
    assert len(set(scores)) == 6


# -- async -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["elevator_asyncio", "elevator_trio"])
def test_async_elevator(name: str, load_example: LoadExample) -> None:
    module = load_example(name)
    with RunRecorder() as recorder:
        states = module.main()
    assert len(states) == 10
    assert all(s.is_completed() for s in states), states
    assert [s.name for s in flow_final_states(recorder)] == ["Completed"]
    assert max_concurrent(recorder, "stop_at_floor") > 1


@pytest.mark.anyio
async def test_async_elevator_awaited_in_a_running_loop(
    anyio_backend: str, load_example: LoadExample
) -> None:
    # The seed's flow gathers with asyncio; on trio the same flow uses a nursery.
    module = load_example("elevator_asyncio" if anyio_backend == "asyncio" else "elevator_trio")
    with RunRecorder() as recorder:
        state = await module.elevator(return_state=True)
    assert state.is_completed()
    finals = [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]
    assert [s.name for s in finals] == ["Completed"] * 10


def test_elevator_asyncio_as_a_script() -> None:
    proc = run_script("elevator_asyncio")
    assert proc.returncode == 0, proc.stderr
    assert "10 of 10 floors completed" in proc.stdout


# -- caching -----------------------------------------------------------------------------------
def test_cache_persist(load_example: LoadExample) -> None:
    home = Path(os.environ["ACTORFLOW_HOME"])  # a temporary directory (tests/conftest.py)
    assert load_example("cache_persist").main() == ["Completed", "Cached", "Completed"]
    assert any(p.is_file() for p in home.rglob("*")), "nothing was persisted under ACTORFLOW_HOME"


def test_transactions(load_example: LoadExample) -> None:
    assert load_example("transactions").main() == {
        "after failed validation": False,
        "after passed validation": True,
    }


def test_cache_expiration(load_example: LoadExample, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_example("cache_expiration").main() == ["Completed", "Cached", "Completed"]
    assert capsys.readouterr().out.count("sleeping\n") == 2


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on moto's S3 server on loopback; AWS_* variables point at it."""
    import boto3
    import moto.server as server_module

    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }.items():
            monkeypatch.setenv(key, value)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="actorflow-cache-test")
        monkeypatch.setenv("ACTORFLOW_CACHE_BUCKET", "s3://actorflow-cache-test")
        yield "actorflow-cache-test"
        client.close()
    finally:
        server.stop()


def test_cache_s3_shared_between_machines(
    s3_bucket: str,
    load_example: LoadExample,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    import boto3

    assert load_example("cache_s3").main() == [("Completed", 43), ("Cached", 43)]
    client = boto3.client("s3")
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) >= 1
    client.close()
    # "Another machine": a fresh import of the task and an empty local home still hit the cache.
    monkeypatch.setenv("ACTORFLOW_HOME", str(tmp_path / "other-machine"))
    assert load_example("cache_s3").main() == [("Cached", 43), ("Cached", 43)]


# -- background tasks --------------------------------------------------------------------------
@pytest.mark.slow
def test_background_serve_and_delay() -> None:
    # As a user runs it: the script queues the run and its worker process (the same script)
    # serves it. Both load the task from ``background_serve.py``, so they agree on its key.
    result = run_script("background_serve")
    assert result.returncode == 0, result.stderr
    assert "add(1, 2) ended Completed()" in result.stdout, result.stdout


@pytest.mark.slow
def test_background_task_worker(load_example: LoadExample) -> None:
    states = load_example("background_task_worker").main(serve_seconds=2.0)
    assert [s.name for s in states] == ["Completed", "Completed"]


# -- the demo ----------------------------------------------------------------------------------
def test_demo(load_example: LoadExample, capsys: pytest.CaptureFixture[str]) -> None:
    out = load_example("demo").main()
    assert out["readings"] == [3, 1, 4, -1, 5, -9]
    assert out["calibrated"] == [2, 0, 3, -2, 4, -10]
    assert out["valid"] == [2, 0, 3, 4]
    assert out["failed"] == ["negative reading: -2", "negative reading: -10"]
    assert out["published"] == "published 4 values, total 9"
    assert out["notified"] == "notified: published 4 values, total 9"
    assert out["skipped_state"].name == "NotReady"
    assert out["not_done"] == 0
    assert out["flow_state"].is_completed()
    assert out["task_states"] == {"Completed": 15, "Failed": 2, "NotReady": 1}
    printed = capsys.readouterr().out
    assert re.search(r"^a failure +Pending -> Running -> Failed$", printed, re.M), printed
    assert re.search(r"^task runs +18: ", printed, re.M), printed


def test_demo_as_a_script() -> None:
    proc = run_script("demo")
    assert proc.returncode == 0, proc.stderr
    assert "valid       [2, 0, 3, 4]" in proc.stdout
