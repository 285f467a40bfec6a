"""Retries (delays on a virtual clock) and timeouts of async and sync tasks and flows."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from actorflow import RunRecorder, flow, task
from actorflow._core import exponential_backoff
from actorflow.exceptions import FlowRunTimeoutError, TaskRunTimeoutError
from actorflow.testing import VirtualClock, use_clock


def flaky_task(failures: int, **options: Any) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @task(**options)
    def flaky() -> int:
        calls.append(1)
        if len(calls) <= failures:
            raise ValueError(f"failure {len(calls)}")
        return len(calls)

    return flaky, calls


def test_retries_without_delay_record_retrying_states() -> None:
    flaky, calls = flaky_task(2, retries=3)
    with RunRecorder() as recorder:
        assert flaky() == 3
    assert len(calls) == 3
    (run_id,) = recorder.runs()
    assert recorder.history(run_id) == ["Pending", "Running", "Retrying", "Retrying", "Completed"]


def test_retries_exhausted_fail() -> None:
    flaky, calls = flaky_task(5, retries=2)
    with RunRecorder() as recorder:
        state = flaky(return_state=True)
    assert state.is_failed() and len(calls) == 3
    assert recorder.history(recorder.runs()[0])[-1] == "Failed"


def test_retry_delays_number_list_and_callable_on_virtual_clock() -> None:
    clock = VirtualClock()
    with use_clock(clock):
        flaky, _ = flaky_task(3, retries=3, retry_delay_seconds=[1, 2])
        with RunRecorder() as recorder:
            assert flaky() == 4
        assert clock.sleeps == [1.0, 2.0, 2.0]  # the last value repeats
        assert recorder.history(recorder.runs()[0]) == [
            "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
            "AwaitingRetry", "Retrying", "Completed",
        ]  # fmt: skip

        clock.sleeps.clear()
        flaky, _ = flaky_task(2, retries=2, retry_delay_seconds=5)
        flaky()
        assert clock.sleeps == [5.0, 5.0]

        clock.sleeps.clear()
        flaky, _ = flaky_task(3, retries=3, retry_delay_seconds=exponential_backoff(10))
        flaky()
        assert clock.sleeps == [10.0, 20.0, 40.0]


def test_retry_jitter_stays_within_bounds() -> None:
    clock = VirtualClock()
    with use_clock(clock):
        flaky, _ = flaky_task(3, retries=3, retry_delay_seconds=10, retry_jitter_factor=0.5)
        flaky()
    assert len(clock.sleeps) == 3 and all(10 <= s <= 15 for s in clock.sleeps)


def test_retry_option_validation() -> None:
    with pytest.raises(ValueError, match="Can not configure more than 50 retry delays"):
        task(retries=51, retry_delay_seconds=list(range(51)))(lambda: None)
    with pytest.raises(ValueError, match="`retry_jitter_factor` must be >= 0"):
        task(retry_jitter_factor=-1)(lambda: None)
    with pytest.raises(TypeError, match="Expected `retry_condition_fn` to be callable, got str"):
        task(retry_condition_fn="nope")(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Invalid `retry_delay_seconds` provided"):
        task(retry_delay_seconds="1")(lambda: None)


def test_retry_condition_fn_decides() -> None:
    seen: list[str] = []

    def only_value_errors(tsk: Any, run: Any, state: Any) -> bool:
        seen.append(type(state.result(raise_on_failure=False)).__name__)
        try:
            state.result()
        except ValueError:
            return True
        except Exception:
            return False
        return False

    calls: list[int] = []

    @task(retries=5, retry_condition_fn=only_value_errors)
    def changes_error() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("retry me")
        raise KeyError("stop")

    with pytest.raises(KeyError):
        changes_error()
    assert len(calls) == 2 and seen == ["ValueError", "KeyError"]


def test_on_failure_hook_runs_once_after_retries() -> None:
    hooks: list[str] = []
    flaky, calls = flaky_task(10, retries=2, on_failure=[lambda t, r, s: hooks.append(s.name)])
    flaky(return_state=True)
    assert len(calls) == 3 and hooks == ["Failed"]


@pytest.mark.anyio
async def test_async_retries_with_delay_on_virtual_clock(anyio_backend: str) -> None:
    calls: list[int] = []

    @task(retries=2, retry_delay_seconds=[3, 4])
    async def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("again")
        return len(calls)

    clock = VirtualClock()
    with use_clock(clock):
        assert await flaky() == 3
    assert clock.sleeps == [3.0, 4.0]


@pytest.mark.anyio
async def test_async_task_timeout_is_timed_out(anyio_backend: str) -> None:
    never = anyio.Event()

    @task(timeout_seconds=0.05)
    async def hangs() -> None:
        await never.wait()

    state = await hangs(return_state=True)
    assert state.name == "TimedOut" and state.is_failed() and not state.is_crashed()
    assert state.message == "Task run exceeded timeout of 0.05 second(s)"
    with pytest.raises(TaskRunTimeoutError, match=r"timed out after 0.05 second\(s\)"):
        await hangs()


@pytest.mark.anyio
async def test_timeouts_go_through_retries(anyio_backend: str) -> None:
    attempts: list[int] = []
    never = anyio.Event()

    @task(timeout_seconds=0.02, retries=1)
    async def hangs_once() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await never.wait()
        return "second try"

    assert await hangs_once() == "second try"


def test_sync_task_timeout_reported_at_deadline_and_body_interrupted() -> None:
    release = threading.Event()
    finished = threading.Event()
    left = threading.Event()

    @task(timeout_seconds=0.05)
    def stuck() -> str:
        try:
            release.wait(10)  # a blocking call: it finishes before the interrupt arrives
            finished.set()  # never reached: interrupted at its next instruction
            return "late"
        finally:
            left.set()

    state = stuck(return_state=True)
    # The state is reported while the body is still blocked: it was not waited for.
    assert not left.is_set()
    assert state.name == "TimedOut"
    release.set()
    assert left.wait(5)
    assert not finished.is_set()
    assert state.name == "TimedOut"
    with pytest.raises(TimeoutError):
        state.result()


def test_a_flow_waits_for_the_interrupted_body_of_a_timed_out_task() -> None:
    events: list[str] = []
    release = threading.Event()

    @task(timeout_seconds=0.05)
    def stuck() -> None:
        try:
            release.wait(0.5)
            events.append("side effect")  # never happens: interrupted after the wait
        finally:
            events.append("body left")

    @flow
    def calls_it() -> str:
        state = stuck(return_state=True)
        events.append(f"flow saw {state.name}")
        return "done"

    assert calls_it() == "done"
    # The flow returned only once the body had left: nothing of it runs after the flow.
    assert events == ["flow saw TimedOut", "body left"]


def test_timeout_not_exceeded_does_not_interfere() -> None:
    @task(timeout_seconds=100)
    def quick() -> int:
        return 1

    assert quick() == 1


def test_user_timeout_error_is_timed_out_state() -> None:
    @task
    def raises_timeout() -> None:
        raise TimeoutError("from user code")

    state = raises_timeout(return_state=True)
    assert state.name == "TimedOut"
    assert state.message.startswith("Task run failed due to timeout")


def test_sync_flow_timeout_interrupts_the_body() -> None:
    after: list[str] = []

    @flow(timeout_seconds=0.1)
    def slow_flow() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.01)
        after.append("ran past the deadline")

    state = slow_flow(return_state=True)
    assert state.name == "TimedOut" and state.is_failed()
    assert "exceeded timeout of 0.1 second(s)" in (state.message or "")
    assert after == []
    with pytest.raises(FlowRunTimeoutError):
        state.result()


@pytest.mark.anyio
async def test_async_flow_timeout_cancels_children(anyio_backend: str) -> None:
    never = anyio.Event()
    futures: list[Any] = []

    @task
    async def hangs() -> None:
        await never.wait()

    @flow(timeout_seconds=0.05)
    async def slow_flow() -> None:
        futures.append(hangs.submit())
        await never.wait()

    state = await slow_flow(return_state=True)
    assert state.name == "TimedOut"
    (future,) = futures
    assert future.state.is_cancelled()


@pytest.mark.anyio
async def test_an_async_task_that_swallows_its_timeout_still_times_out() -> None:
    @task(timeout_seconds=0.05)
    async def stubborn() -> str:
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            return "swallowed"  # catches the cancellation once, and returns
        return "finished"

    state = await stubborn(return_state=True)
    assert state.name == "TimedOut"
    with pytest.raises(TaskRunTimeoutError):
        await stubborn()
