"""An exception wherever user code runs (a body, a retry condition, a hook, a run-name
function, a result serializer, a cache key function, an observer) ends in a defined state with
a message naming the cause; an observer that raises never breaks a run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from actorflow import RunRecorder, flow, observe, task
from actorflow.exceptions import UnfinishedRun

FINAL = {"Completed", "Cached", "Failed", "TimedOut", "Cancelled", "Crashed"}


def one_end_each(recorder: RunRecorder) -> dict[str, str]:
    """Each run's final state name, checking that it reached exactly one."""
    ends: dict[str, str] = {}
    for run_id in recorder.runs():
        names = [n for n in recorder.history(run_id) if n in FINAL]
        assert len(names) == 1, recorder.history(run_id)
        ends[run_id] = names[0]
    return ends


def test_a_body_that_raises_fails_its_run_naming_the_error() -> None:
    @task
    def broken() -> None:
        raise ValueError("body broke")

    states: list[Any] = []

    @flow
    def host() -> None:
        future = broken.submit()
        future.wait()
        states.append(future.state)

    with RunRecorder() as recorder:
        host()
    (state,) = states
    assert state.is_failed()
    assert state.message == "Task run encountered an exception ValueError: body broke"
    with pytest.raises(ValueError, match="body broke"):
        state.result()
    assert sorted(one_end_each(recorder).values()) == ["Completed", "Failed"]


@pytest.mark.anyio
async def test_an_async_body_that_raises_fails_its_run_and_its_flow(anyio_backend: str) -> None:
    @task
    async def broken() -> None:
        raise ValueError("async body broke")

    @flow
    async def host() -> None:
        await broken.submit()

    with RunRecorder() as recorder:
        state = await host(return_state=True)
    assert state.is_failed()
    assert "ValueError: async body broke" in (state.message or "")
    assert sorted(one_end_each(recorder).values()) == ["Failed", "Failed"]


def test_a_retry_condition_that_raises_stops_retrying_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def condition(task: Any, run: Any, state: Any) -> bool:
        raise KeyError("condition broke")

    @task(retries=3, retry_condition_fn=condition)
    def broken() -> None:
        calls.append(1)
        raise ValueError("body broke")

    with caplog.at_level(logging.ERROR, logger="actorflow"):
        state = broken(return_state=True)
    assert calls == [1]  # no retry
    assert state.is_failed()
    assert state.message == "Task run encountered an exception ValueError: body broke"
    (record,) = [r for r in caplog.records if "retry_condition_fn" in r.getMessage()]
    assert "task run 'broken'" in record.getMessage()
    assert record.exc_info is not None and "condition broke" in str(record.exc_info[1])


@pytest.mark.parametrize("outcome", ["Completed", "Failed"])
def test_a_hook_that_raises_is_reported_and_the_state_stands(
    outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook(task: Any, run: Any, state: Any) -> None:
        raise OSError("hook broke")

    @task(on_completion=[broken_hook], on_failure=[broken_hook])
    def body() -> int:
        if outcome == "Failed":
            raise ValueError("body broke")
        return 1

    with caplog.at_level(logging.ERROR, logger="actorflow"):
        state = body(return_state=True)
    assert state.name == outcome
    (record,) = [r for r in caplog.records if "hook" in r.getMessage()]
    assert record.getMessage() == (
        f"hook 'broken_hook' of task run 'body' raised; the run's state stays {outcome}"
    )
    assert record.exc_info is not None and "hook broke" in str(record.exc_info[1])


def test_a_flow_hook_that_raises_leaves_the_flow_state_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken_hook(flow: Any, run: Any, state: Any) -> None:
        raise OSError("flow hook broke")

    @flow(on_failure=[broken_hook])
    def host() -> None:
        raise ValueError("flow body broke")

    with caplog.at_level(logging.ERROR, logger="actorflow"):
        state = host(return_state=True)
    assert state.is_failed()
    assert "ValueError: flow body broke" in (state.message or "")
    assert any("broken_hook" in r.getMessage() for r in caplog.records)


def test_a_task_run_name_function_that_raises_names_the_option() -> None:
    def bad_name() -> str:
        raise LookupError("name broke")

    @task(task_run_name=bad_name)
    def named() -> int:
        return 1

    expected = "task 'named': its task_run_name callable .*bad_name raised LookupError: name broke"
    with pytest.raises(ValueError, match=expected) as caught:
        named()
    assert isinstance(caught.value.__cause__, LookupError)

    @flow
    def host() -> None:
        named.submit()

    state = host(return_state=True)
    assert state.is_failed()
    assert "its task_run_name callable" in (state.message or "")
    assert "LookupError: name broke" in (state.message or "")


def test_a_cache_key_function_that_raises_fails_the_run_naming_it() -> None:
    ran: list[int] = []

    def bad_key(context: Any, parameters: dict[str, Any]) -> str:
        raise ZeroDivisionError("key broke")

    @task(cache_key_fn=bad_key)
    def keyed() -> int:
        ran.append(1)
        return 1

    state = keyed(return_state=True)
    assert state.is_failed()
    assert state.message is not None
    assert "cache key" in state.message and "ZeroDivisionError: key broke" in state.message
    assert "task 'keyed'" in state.message
    assert ran == []  # the body never ran with an unknown key


class BrokenDumps:
    """A serializer whose ``dumps`` raises."""

    name = "broken"

    def dumps(self, value: Any) -> tuple[str, bytes]:
        raise RuntimeError("serializer broke")

    def loads(self, fmt: str, payload: bytes) -> Any:  # pragma: no cover - nothing is written
        raise AssertionError("never called")

    def reads(self, fmt: str) -> bool:
        return fmt == "broken"


class BrokenLoads:
    """Reads pickle records, and fails to load each."""

    name = "broken-loads"

    def dumps(self, value: Any) -> tuple[str, bytes]:
        import pickle

        return "pickle", pickle.dumps(value)

    def loads(self, fmt: str, payload: bytes) -> Any:
        raise RuntimeError("loads broke")

    def reads(self, fmt: str) -> bool:
        return fmt in ("pickle", "cloudpickle")


def test_a_serializer_that_cannot_dump_completes_unpersisted_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @task(
        result_serializer=BrokenDumps(),
        result_storage=str(tmp_path),
        cache_key_fn=lambda *_: "rel/dump",
    )
    def value() -> int:
        return 41

    with caplog.at_level(logging.WARNING):
        state = value(return_state=True)
    assert state.is_completed() and state.result() == 41  # as in Prefect: the run goes on
    assert any(
        "RuntimeError: serializer broke" in r.getMessage() and "rel/dump" in r.getMessage()
        for r in caplog.records
    )
    assert not (tmp_path / "rel" / "dump").exists()


def test_a_record_the_serializer_cannot_load_is_recomputed_never_returned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def body() -> int:
        calls.append(1)
        return len(calls)

    writer = task(
        body,
        name="writer",
        result_storage=str(tmp_path),
        cache_key_fn=lambda *_: "rel/load",
        result_serializer="pickle",
        cache_result_in_memory=False,  # the reader must load the record from storage
    )
    reader = task(
        body,
        name="reader",
        result_storage=str(tmp_path),
        cache_key_fn=lambda *_: "rel/load",
        result_serializer=BrokenLoads(),
    )
    assert writer() == 1
    with caplog.at_level(logging.WARNING, logger="actorflow.cache"):
        state = reader(return_state=True)
    assert state.name == "Completed"  # recomputed, not Cached
    assert state.result() == 2
    assert any(
        "cannot be loaded (RuntimeError: loads broke)" in r.getMessage() for r in caplog.records
    )


def test_an_observer_that_raises_never_breaks_a_run(caplog: pytest.LogCaptureFixture) -> None:
    def broken_observer(event: Any) -> None:
        raise RuntimeError("observer broke")

    @task
    def double(x: int) -> int:
        return 2 * x

    @task
    def broken() -> None:
        raise ValueError("body broke")

    @flow
    def host() -> list[int]:
        broken.submit().wait()
        return double.map(range(5)).result()

    with caplog.at_level(logging.ERROR, logger="actorflow"), RunRecorder() as recorder:
        with observe(broken_observer):
            assert host() == [0, 2, 4, 6, 8]
    ends = one_end_each(recorder)  # the observer after the broken one heard every transition
    assert sorted(ends.values()) == ["Completed"] * 6 + ["Failed"]
    messages = [r.getMessage() for r in caplog.records if "observer" in r.getMessage()]
    assert len(messages) == len(recorder.events)  # one report per transition, and no more
    assert (
        messages[0].startswith("run observer ")
        and "broken_observer raised on the transition" in messages[0]
    )
    assert "flow run" in messages[0] and "to Pending; the run goes on" in messages[0]


@pytest.mark.anyio
async def test_an_observer_that_raises_never_breaks_an_async_run(anyio_backend: str) -> None:
    def broken_observer(event: Any) -> None:
        raise RuntimeError("observer broke")

    @task
    async def double(x: int) -> int:
        return 2 * x

    @flow
    async def host() -> list[int]:
        return [await f for f in double.map(range(5))]

    with observe(broken_observer):
        assert await host() == [0, 2, 4, 6, 8]


def test_a_failed_upstream_is_named_downstream() -> None:
    @task
    def broken() -> int:
        raise ValueError("upstream broke")

    @task
    def downstream(x: int) -> int:  # pragma: no cover - never runs
        return x

    states: list[Any] = []

    @flow
    def host() -> None:
        future = downstream.submit(broken.submit())
        future.wait()
        states.append(future.state)

    host()
    (state,) = states
    assert state.name == "NotReady"
    assert "upstream" in (state.message or "").lower()
    with pytest.raises(UnfinishedRun):
        state.result()
