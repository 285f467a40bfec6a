"""Flows: final-state rules, subflows, parameters, names, hooks, retries, unwaited children."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorflow import RunRecorder, allow_failure, flow, task
from actorflow.exceptions import ParameterBindError
from actorflow.states import Cancelled, Completed, Failed, State, StateType


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
def fails() -> None:
    raise ValueError("Test")


def test_flow_returns_value_and_default_name() -> None:
    @flow
    def my_fn(x: int) -> int:
        return x * 2

    assert my_fn(2) == 4
    assert my_fn.name == "my-fn"
    assert flow(lambda: 1).name == "unknown-lambda"


def test_flow_name_validation() -> None:
    with pytest.raises(ValueError, match="contains an invalid character"):
        flow(name="a/b")(lambda: 1)
    with pytest.raises(TypeError, match="Expected string for flow parameter 'name'; got int"):
        flow(name=1)(lambda: 1)  # type: ignore[arg-type]


def test_exception_fails_flow_and_plain_call_reraises() -> None:
    @flow
    def broken() -> None:
        raise ValueError("Test")

    state = broken(return_state=True)
    assert state.is_failed()
    assert state.message == "Flow run encountered an exception: ValueError: Test"
    assert isinstance(state.result(raise_on_failure=False), ValueError)
    with pytest.raises(ValueError, match="Test"):
        broken()


def test_returned_states_derive_the_flow_state() -> None:
    @flow
    def all_ok() -> tuple[Any, ...]:
        return add.submit(1), add.submit(2)

    @flow
    def some_failed() -> list[Any]:
        return [add.submit(1), fails.submit(), fails(return_state=True)]

    @flow
    def one_cancelled() -> list[State[Any]]:
        return [Completed(), Cancelled(), Failed()]

    ok = all_ok(return_state=True)
    assert ok.is_completed() and ok.message == "All states completed."
    assert [s.result() for s in ok.result()] == [2, 3]
    failed = some_failed(return_state=True)
    assert failed.is_failed() and failed.message == "2/3 states failed."
    with pytest.raises(ValueError, match="Test"):
        failed.result()
    cancelled = one_cancelled(return_state=True)
    assert cancelled.is_cancelled() and cancelled.message == "1/3 states cancelled."


def test_returned_single_failed_state_raises_task_exception() -> None:
    @flow
    def returns_failed() -> State[Any]:
        return fails(return_state=True)

    with pytest.raises(ValueError, match="Test"):
        returns_failed()


def test_manual_state_is_used_as_is() -> None:
    @flow
    def manual() -> State[Any]:
        return Failed(message="Test returned state", data="hello!")

    state = manual(return_state=True)
    assert state.is_failed() and state.message == "Test returned state"
    assert state.result(raise_on_failure=False) == "hello!"


def test_unreturned_failed_future_leaves_flow_completed_but_visible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @flow
    def my_flow() -> str:
        fails.submit()
        return "bar"

    assert my_flow() == "bar"
    assert "1 task run(s) it submitted did not complete" in caplog.text


def test_unwaited_futures_are_waited_for_not_dropped() -> None:
    gate = threading.Event()
    futures: list[Any] = []

    @task
    def slow() -> int:
        assert gate.wait(5)
        return 7

    @flow
    def my_flow() -> None:
        futures.append(slow.submit())
        threading.Timer(0.01, gate.set).start()

    my_flow()
    (future,) = futures
    assert future.state.is_completed() and future.result() == 7


def test_parameter_validation() -> None:
    @flow
    def needs_two(x: int, y: int) -> int:
        return x + y

    # Arguments that do not bind raise at the call, with or without return_state (as in
    # Prefect); no run is made.
    with RunRecorder() as recorder:
        with pytest.raises(ParameterBindError, match="missing a required argument: 'y'"):
            needs_two(1, return_state=True)  # type: ignore[call-arg]
        with pytest.raises(ParameterBindError, match="missing a required argument: 'y'"):
            needs_two(1)  # type: ignore[call-arg]
    assert recorder.runs() == []
    # Values of the wrong type fail the run.
    state = needs_two(1, "x", return_state=True)  # type: ignore[arg-type]
    assert state.is_failed()
    assert state.message.startswith("Validation of flow parameters failed with error")


def test_flow_run_name_template_and_callable() -> None:
    names: list[str] = []

    def record(f: Any, run: Any, state: State[Any]) -> None:
        names.append(run.name)

    @flow(flow_run_name="{name}-wuz-{where}", on_completion=[record])
    def templated(name: str, where: str = "here") -> None: ...

    @flow(flow_run_name=lambda: "called", on_completion=[record])
    def called() -> None: ...

    templated("chris")
    called()
    assert names == ["chris-wuz-here", "called"]


def test_flow_hooks_and_failing_hook() -> None:
    seen: list[str] = []

    def bad(f: Any, run: Any, state: State[Any]) -> None:
        raise RuntimeError("hook broken")

    @flow(
        on_running=[lambda f, r, s: seen.append("running:" + s.name)],
        on_failure=[bad, lambda f, r, s: seen.append("failure:" + s.name)],
    )
    def broken() -> None:
        raise ValueError("x")

    state = broken(return_state=True)
    assert state.is_failed()
    assert seen == ["running:Running", "failure:Failed"]


def test_flow_retries_rerun_the_body() -> None:
    attempts: list[int] = []

    @flow(retries=2)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("again")
        return "done"

    with RunRecorder() as recorder:
        assert flaky() == "done"
    (run_id,) = recorder.runs("flow")
    assert recorder.history(run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]


def test_task_retries_apply_on_every_flow_attempt() -> None:
    calls: list[int] = []

    @task(retries=2)
    def always_fails() -> None:
        calls.append(1)
        raise ValueError("no")

    @flow(retries=1)
    def parent() -> None:
        always_fails()

    assert parent(return_state=True).is_failed()
    assert len(calls) == 6


def test_subflows_are_child_supervisors() -> None:
    @flow
    def child(x: int) -> int:
        return add.submit(x).result()

    @flow
    def parent() -> tuple[int, Any]:
        return child(1), child(2, return_state=True)

    with RunRecorder() as recorder:
        result, state = parent()
    assert result == 2 and state.result() == 3
    flows = recorder.runs("flow")
    assert len(flows) == 3
    child_events = [e for e in recorder.events if e.run_kind == "flow" and e.parent_id]
    assert {e.parent_id for e in child_events} == {flows[0]}


def test_sync_subflow_in_async_flow_and_async_subflow_in_async_flow() -> None:
    @flow
    def sync_child() -> int:
        return add(1)

    @flow
    async def async_child() -> int:
        return add(2)

    @flow
    async def parent() -> list[int]:
        return [sync_child(), await async_child()]

    import asyncio

    assert asyncio.run(parent()) == [2, 3]


def test_subflow_wait_for_failed_upstream_is_not_ready() -> None:
    @flow
    def child() -> int:
        return 1

    @flow
    def parent() -> dict[str, State[Any]]:
        failed = fails.submit()
        return {"child": child(wait_for=[failed], return_state=True)}

    assert parent()["child"].name == "NotReady"


def test_subflow_wait_for_allows_an_upstream_run_that_did_not_complete() -> None:
    @task
    def held() -> int:
        return 1

    @flow
    def child() -> int:
        return 1

    @flow
    def parent() -> tuple[str, str, str]:
        failed = fails.submit()
        queued = held.submit(wait_for=[failed])  # NotReady: not Completed, not Failed
        queued.wait()
        allowed = child(wait_for=[allow_failure(failed), allow_failure(queued)], return_state=True)
        return failed.state.name, queued.state.name, allowed.name

    # As for task runs, allow_failure lets a subflow run whatever the upstream run's end.
    assert parent() == ("Failed", "NotReady", "Completed")


@pytest.mark.anyio
async def test_async_flow_runs_on_the_callers_loop(anyio_backend: str) -> None:
    @task
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    @flow
    async def my_flow(xs: list[int]) -> list[int]:
        async with anyio.create_task_group() as tg:
            results: dict[int, int] = {}

            async def one(x: int) -> None:
                results[x] = await double(x)

            for x in xs:
                tg.start_soon(one, x)
        return [results[x] for x in xs]

    assert await my_flow([1, 2, 3]) == [2, 4, 6]


@pytest.mark.anyio
async def test_async_flow_failure_cancels_children(anyio_backend: str) -> None:
    started = anyio.Event()

    @task
    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    futures: list[Any] = []

    @flow
    async def my_flow() -> None:
        futures.append(forever.submit())
        await started.wait()
        raise ValueError("boom")

    state = await my_flow(return_state=True)
    assert state.is_failed()
    (future,) = futures
    assert future.state.type is StateType.CANCELLED


def test_a_retried_parent_reuses_completed_subflows_and_reruns_failed_ones() -> None:
    calls: list[str] = []
    attempt = {"parent": 0}

    @flow
    def child(tag: str) -> str:
        calls.append(tag)
        if tag == "flaky" and attempt["parent"] == 1:
            raise ValueError("child failed")
        return tag.upper()

    @flow(retries=1)
    def parent() -> list[str]:
        attempt["parent"] += 1
        first, second = child("a"), child("b")  # two calls: two keys
        flaky = child("flaky", return_state=True)
        if attempt["parent"] == 1:
            raise RuntimeError("parent failed after its subflows")
        return [first, second, flaky.result()]

    assert parent() == ["A", "B", "FLAKY"]
    # The second attempt reused "a" and "b" (completed); the flaky one ran again.
    assert calls == ["a", "b", "flaky", "flaky"]


def test_subflows_of_a_parent_without_retries_always_run() -> None:
    calls: list[int] = []

    @flow
    def child() -> int:
        calls.append(1)
        return len(calls)

    @flow
    def parent() -> list[int]:
        return [child(), child()]

    assert parent() == [1, 2]
    assert parent() == [3, 4]


def test_a_flow_hook_cannot_submit_task_runs_to_its_finished_flow() -> None:
    errors: list[str] = []

    @task
    def late() -> int:
        return 1

    def submits(flow: Any, flow_run: Any, state: State[Any]) -> None:
        try:
            late.submit()
        except RuntimeError as exc:
            errors.append(str(exc))
        errors.append(f"runner released: {flow_run._runner is None}")

    @flow(on_completion=[submits])
    def finished() -> None:
        pass

    assert finished(return_state=True).is_completed()
    assert len(errors) == 2
    assert (
        errors[0].startswith("flow run ")
        and "has finished: it cannot take new task runs" in errors[0]
    )
    assert errors[1] == "runner released: True"
