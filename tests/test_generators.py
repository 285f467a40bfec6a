"""Generator tasks: items passed on as the body yields them, retries, deadlines, early stops."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorflow import RunRecorder, flow, task
from actorflow.exceptions import TaskRunTimeoutError


def test_items_come_as_the_body_yields_them() -> None:
    steps: list[str] = []

    @task
    def numbers(n: int) -> Iterator[int]:
        for i in range(n):
            steps.append(f"yield {i}")
            yield i
        return n  # type: ignore[return-value]  # the run's result

    with RunRecorder() as recorder:
        for item in numbers(3):
            steps.append(f"got {item}")
    assert steps == ["yield 0", "got 0", "yield 1", "got 1", "yield 2", "got 2"]
    (run_id,) = recorder.runs()
    assert recorder.history(run_id) == ["Pending", "Running", "Completed"]
    assert recorder.events[-1].state.result() == 3


def test_nothing_runs_until_the_first_item_is_asked_for() -> None:
    started: list[int] = []

    @task
    def numbers() -> Iterator[int]:
        started.append(1)
        yield 1

    items = numbers()
    assert started == []
    assert list(items) == [1] and started == [1]


def test_a_failure_is_retried_and_the_last_one_raised() -> None:
    attempts: list[int] = []

    @task(retries=1)
    def flaky() -> Iterator[int]:
        attempts.append(1)
        yield len(attempts)
        if len(attempts) < 3:
            raise ValueError(f"attempt {len(attempts)}")

    with RunRecorder() as recorder, pytest.raises(ValueError, match="attempt 2"):
        list(flaky())
    (run_id,) = recorder.runs()
    assert recorder.history(run_id) == ["Pending", "Running", "Retrying", "Failed"]


def test_a_generator_task_in_a_flow_sees_its_run_and_the_flow_goes_on() -> None:
    @task(log_prints=True)
    def words() -> Iterator[str]:
        from actorflow.runtime import task_run

        yield str(task_run.name)
        yield "done"

    @flow
    def pipeline() -> list[str]:
        return [w.upper() for w in words()]

    name, done = pipeline()
    assert name.startswith("WORDS-") and done == "DONE"


def test_stopping_early_completes_the_run_and_closes_the_body() -> None:
    closed = threading.Event()

    @task
    def endless() -> Iterator[int]:
        i = 0
        try:
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with RunRecorder() as recorder:
        for item in endless():
            if item == 2:
                break
    assert closed.is_set()
    (run_id,) = recorder.runs()
    assert recorder.history(run_id)[-1] == "Completed"


def test_a_deadline_counts_to_the_end_of_the_body() -> None:
    release = threading.Event()

    @task(timeout_seconds=0.2)
    def stuck() -> Iterator[int]:
        yield 1
        release.wait(5)  # interrupted at the deadline, once it returns
        yield 2

    items: list[int] = []
    with RunRecorder() as recorder, pytest.raises(TaskRunTimeoutError):
        for item in stuck():
            items.append(item)
    release.set()
    assert items == [1]
    (run_id,) = recorder.runs()
    assert recorder.history(run_id)[-1] == "TimedOut"


def test_generator_tasks_cannot_be_submitted_or_mapped() -> None:
    @task
    def numbers() -> Iterator[int]:
        yield 1

    @flow
    def uses(how: str) -> Any:
        return numbers.submit() if how == "submit" else numbers.map([1])

    for how, word in (("submit", "submitted"), ("map", "mapped")):
        with pytest.raises(ValueError, match=f"Generator task 'numbers' cannot be {word}"):
            uses(how)


async def test_async_generator_task(anyio_backend: str) -> None:
    attempts: list[int] = []

    @task(retries=1)
    async def ticks(n: int) -> AsyncIterator[int]:
        attempts.append(1)
        for i in range(n):
            await anyio.lowlevel.checkpoint()
            yield i
        if len(attempts) == 1:
            raise ValueError("first attempt")

    with RunRecorder() as recorder:
        items = [i async for i in ticks(2)]
    assert items == [0, 1, 0, 1]
    (run_id,) = recorder.runs()
    assert recorder.history(run_id) == ["Pending", "Running", "Retrying", "Completed"]


async def test_async_generator_deadline_and_early_stop(anyio_backend: str) -> None:
    @task(timeout_seconds=0.2)
    async def slow() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(5)
        yield 2

    items: list[int] = []
    with pytest.raises(TaskRunTimeoutError):
        async for item in slow():
            items.append(item)
    assert items == [1]

    closed: list[bool] = []

    @task
    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
        finally:
            closed.append(True)

    with RunRecorder() as recorder:
        agen = endless()
        async for _ in agen:
            break
        await agen.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
    (run_id,) = recorder.runs()
    assert recorder.history(run_id)[-1] == "Completed"
