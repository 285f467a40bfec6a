"""Cancelling a flow, or the task hosting it, mid-way: every child is cancelled, no further body
runs, the records say Cancelled, and nothing is left running (tasks, threads, processes are
counted, on asyncio and on trio)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from reliability_tasks import mark_and_sleep

from actorflow import RunRecorder, flow, task
from actorflow._core import runtime
from actorflow.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner


@pytest.fixture
def quick_idle_exit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker threads exit 50 ms after their last work item, so that a test can count them."""
    monkeypatch.setattr(runtime.threads, "idle_timeout", 0.05)
    yield


def live_tasks() -> int:
    """Tasks of the running event loop other than the current one."""
    if _backend() == "asyncio":
        return len(asyncio.all_tasks() - {asyncio.current_task()})
    import trio

    def count(task: trio.lowlevel.Task) -> int:
        return sum(1 + count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


def _backend() -> str:
    import sniffio

    return sniffio.current_async_library()


def leftover_threads(before: set[threading.Thread], deadline: float = 5.0) -> list[str]:
    """Threads started since ``before`` and still alive, and threads of the runtime's shared
    cache, once idle ones had time to exit (the runtime loop's thread is process-wide, not a
    worker: it lives as long as the process)."""
    stop = time.monotonic() + deadline
    while True:
        new = [
            t.name
            for t in threading.enumerate()
            if t not in before
            and t.name != "actorflow-runtime"
            # trio's own: the test runner drives trio in guest mode, which waits for I/O on a
            # thread of trio's thread cache
            and not t.name.startswith("Trio thread")
            and t.is_alive()
        ]
        cached = runtime.threads.statistics().threads
        if (not new and not cached) or time.monotonic() > stop:
            return [*new, *(["(runtime thread cache)"] * cached)]
        time.sleep(0.01)


def final_states(recorder: RunRecorder) -> dict[str, tuple[str, str, list[str]]]:
    """Each run's (kind, name of its last state, every state name), by run id."""
    out: dict[str, tuple[str, str, list[str]]] = {}
    for event in recorder.events:
        kind, _, names = out.get(event.run_id, (event.run_kind, "", []))
        out[event.run_id] = (kind, event.state.name, [*names, event.state.name])
    return out


FINAL = {"Completed", "Cached", "Failed", "TimedOut", "Cancelled", "Crashed"}


def assert_one_end_each(recorder: RunRecorder) -> None:
    for run_id, (_, _, names) in final_states(recorder).items():
        ends = [n for n in names if n in FINAL]
        assert len(ends) == 1, (run_id, names)


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["host task", "timeout"])
async def test_cancelling_a_flow_mid_way_cancels_every_child_and_leaves_nothing_running(
    anyio_backend: str, how: str, quick_idle_exit: None
) -> None:
    started, nested_started = anyio.Event(), anyio.Event()
    sync_started, gate = threading.Event(), threading.Event()
    queued: list[Any] = []
    ran_after: list[str] = []
    tasks_before = live_tasks()
    threads_before = set(threading.enumerate())

    @task
    async def forever(i: int) -> None:
        await anyio.sleep_forever()
        ran_after.append(f"forever {i}")  # pragma: no cover - must never run

    @task
    async def nested_parent() -> None:
        forever.submit(99)
        nested_started.set()
        await anyio.sleep_forever()
        ran_after.append("nested parent")  # pragma: no cover

    @task
    def sync_running() -> str:
        sync_started.set()
        # A running sync body cannot be interrupted: it is waited for. It goes on until the
        # cancellation has reached the runs queued behind it.
        stop = time.monotonic() + 10
        while len(queued) < 3 or not all(f.task_run.statistics().mailbox for f in queued):
            assert time.monotonic() < stop, "the queued runs never heard of the cancellation"
            gate.wait(0.005)
        return "finished"

    @task
    def sync_queued(i: int) -> None:
        ran_after.append(f"sync queued {i}")  # pragma: no cover - must never run

    @flow(
        task_runner=ThreadPoolTaskRunner(max_workers=1),
        timeout_seconds=None if how == "host task" else 1.0,
    )
    async def host() -> None:
        forever.map(range(5))
        nested_parent.submit()
        sync_running.submit()
        queued.extend(sync_queued.map(range(3)))  # behind the one worker
        await nested_started.wait()
        # Polled: the body sets it on a worker thread (no anyio thread of this test's own).
        while not sync_started.is_set():  # noqa: ASYNC110  # set from another thread
            await anyio.sleep(0.005)
        started.set()  # every child is running or queued
        await anyio.sleep_forever()

    recorder = RunRecorder()
    with recorder, anyio.fail_after(10):
        if how == "host task":
            async with anyio.create_task_group() as tg:
                tg.start_soon(host)
                await started.wait()
                tg.cancel_scope.cancel()
        else:
            state = await host(return_state=True)
            assert state.name == "TimedOut"

    ends = final_states(recorder)
    flows = [v for v in ends.values() if v[0] == "flow"]
    tasks = sorted(v[1] for v in ends.values() if v[0] == "task")
    if how == "host task":
        assert [f[1] for f in flows] == ["Cancelled"]
    # 5 forever + 1 nested parent + 1 nested child + 3 queued sync: Cancelled; the running
    # sync body finishes, Completed.
    assert tasks == ["Cancelled"] * 10 + ["Completed"], tasks
    assert ran_after == []
    assert_one_end_each(recorder)
    assert live_tasks() == tasks_before  # no task of this loop left behind
    assert leftover_threads(threads_before) == []


@pytest.mark.anyio
async def test_cancelling_a_flow_on_the_process_runner_ships_no_further_body(
    anyio_backend: str, tmp_path: Path, quick_idle_exit: None
) -> None:
    threads_before = set(threading.enumerate())

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=1))
    async def host() -> None:
        mark_and_sleep.map(str(tmp_path), range(8), 0.3)
        await anyio.sleep_forever()

    recorder = RunRecorder()
    with recorder, anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(host)
            while not os.listdir(tmp_path):  # noqa: ASYNC110  # the worker process makes it
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()

    started = sorted(int(name) for name in os.listdir(tmp_path))
    ends = final_states(recorder)
    tasks = [v[1] for v in ends.values() if v[0] == "task"]
    # The pool is fed two items per worker: those bodies were in the worker already and finish;
    # the six waiting to be shipped never start.
    assert started == [0, 1]
    assert sorted(tasks) == ["Cancelled"] * 6 + ["Completed"] * 2
    assert [v[1] for v in ends.values() if v[0] == "flow"] == ["Cancelled"]
    assert_one_end_each(recorder)
    assert multiprocessing.active_children() == []
    assert leftover_threads(threads_before) == []
