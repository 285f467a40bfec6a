"""actorflow.serving(): a service's lifecycle; sync runs called from async code."""

from __future__ import annotations

import threading
import time
import warnings

import anyio
import pytest

import actorflow
from actorflow import flow, task
from actorflow._core import runtime
from actorflow.exceptions import CancelledRun, SyncCallOnEventLoopWarning
from actorflow.utilities.asyncutils import run_sync_in_worker_thread


def _actorflow_threads() -> list[str]:
    """Threads the runtime started that are still alive: its worker threads (busy or parked)
    and its loop's. (Tests elsewhere make thread caches of their own: not the runtime's.)"""
    names = [f"worker thread #{i}" for i in range(runtime.threads.statistics().threads)]
    names += [
        t.name for t in threading.enumerate() if t.name in ("actorflow-runtime", "actorflow-stop")
    ]
    return names


async def _until_no_thread_left(seconds: float) -> None:
    with anyio.move_on_after(seconds):
        while _actorflow_threads():  # noqa: ASYNC110  # threads ending: no event to wait on
            await anyio.sleep(0.01)


def _spin(seconds: float) -> None:
    """A slow sync body made of Python steps (a blocking C call could not be interrupted)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.005)


@task
def double(x: int) -> int:
    return 2 * x


@flow
def sync_flow(x: int) -> int:
    return double(x)


@pytest.mark.anyio
async def test_a_sync_flow_called_on_the_loop_warns_once_naming_it(anyio_backend: str) -> None:
    runtime.reset()  # the warning is said once per process and flow
    with pytest.warns(SyncCallOnEventLoopWarning, match=r"sync flow 'sync-flow'.*run_sync_in"):
        assert sync_flow(1) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sync_flow(2) == 4  # said once


@pytest.mark.anyio
async def test_a_sync_task_called_on_the_loop_warns_with_the_call_site(
    anyio_backend: str,
) -> None:
    runtime.reset()
    with pytest.warns(SyncCallOnEventLoopWarning, match=r"sync task 'double'") as record:
        assert double(3) == 6
    assert record[0].filename == __file__


@pytest.mark.anyio
async def test_sync_calls_inside_an_async_flow_body_do_not_warn(anyio_backend: str) -> None:
    """There they already run on a worker thread while the body is suspended."""
    runtime.reset()
    loop_thread = threading.get_ident()

    @task
    def where() -> int:
        return threading.get_ident()

    @flow
    async def body() -> tuple[int, int]:
        return where(), sync_flow(4)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        thread, value = await body()
    assert thread != loop_thread and value == 8


@pytest.mark.anyio
async def test_run_sync_in_worker_thread_keeps_the_loop_free(anyio_backend: str) -> None:
    """The sync flow runs on a worker thread, in the caller's context (its observers), and
    the loop goes on meanwhile: no warning."""
    release = threading.Event()
    ticks = 0

    @flow
    def waits() -> int:
        release.wait(5)
        return double(5)

    async def ticker() -> None:
        nonlocal ticks
        while not release.is_set():
            ticks += 1
            if ticks == 5:
                release.set()
            await anyio.sleep(0.001)

    recorder = actorflow.RunRecorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with actorflow.observe(recorder):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                assert await run_sync_in_worker_thread(waits) == 10
    assert ticks >= 5
    assert {e.run_name.split("-")[0] for e in recorder.events} >= {"double"}


@pytest.mark.anyio
async def test_serving_cancels_flows_at_shutdown_and_leaves_no_thread(anyio_backend: str) -> None:
    """Leaving serving() cancels the async flow still running (its async task run Cancelled),
    abandons the sync body it waits on once the grace period is over (Crashed), and stops
    every thread actorflow started."""
    started = threading.Event()

    @task
    def slow() -> int:
        started.set()
        _spin(0.3)
        return 1

    @task
    async def forever() -> None:
        await anyio.sleep(3600)

    @flow
    async def request_flow() -> int:
        a = slow.submit()
        forever.submit()
        return a.result()

    recorder = actorflow.RunRecorder()
    outcome: list[BaseException] = []

    async def handler() -> None:
        try:
            await request_flow()
        except CancelledRun as exc:
            outcome.append(exc)

    with actorflow.observe(recorder):
        async with anyio.create_task_group() as tg:
            async with actorflow.serving(grace_period=0.05) as service:
                tg.start_soon(handler)
                await anyio.to_thread.run_sync(started.wait, 5)
                assert service.statistics().flows_running == 1
            stats = service.statistics()
    assert stats.flows_running == 0 and stats.flows_cancelled == 1
    assert stats.tasks_stopped == 1 and stats.stopping
    assert outcome and "shutting down" in str(outcome[0])
    finals = {e.run_name.split("-")[0]: e.state for e in recorder.events if e.state.is_final()}
    assert finals["slow"].is_crashed()
    assert finals["forever"].is_cancelled()
    assert [e.state for e in recorder.events if e.run_kind == "flow"][-1].is_cancelled()
    await _until_no_thread_left(2)  # the abandoned body ends within its 0.3 s
    assert _actorflow_threads() == []


@pytest.mark.anyio
async def test_serving_drain_lets_flows_finish(anyio_backend: str) -> None:
    started = threading.Event()

    @flow
    async def short() -> int:
        started.set()
        await anyio.sleep(0.05)
        return 7

    results: list[int] = []

    async def handler() -> None:
        results.append(await short())

    async with anyio.create_task_group() as tg:
        async with actorflow.serving(shutdown="drain", grace_period=5) as service:
            tg.start_soon(handler)
            await anyio.to_thread.run_sync(started.wait, 5)
    assert results == [7]
    assert service.statistics().flows_cancelled == 0
    assert _actorflow_threads() == []


@pytest.mark.anyio
async def test_serving_starts_nothing(anyio_backend: str) -> None:
    runtime.reset()
    before = set(threading.enumerate())
    async with actorflow.serving():
        assert set(threading.enumerate()) == before
    assert _actorflow_threads() == []


@pytest.mark.anyio
async def test_serving_refuses_bad_options_and_a_second_service(anyio_backend: str) -> None:
    with pytest.raises(ValueError, match="'cancel' or 'drain', got 'wait'"):
        async with actorflow.serving(shutdown="wait"):  # type: ignore[arg-type]  # the error
            pass
    with pytest.raises(ValueError, match=r"grace_period=\.\.\.\) must be >= 0"):
        async with actorflow.serving(grace_period=-1):
            pass
    async with actorflow.serving():
        with pytest.raises(RuntimeError, match="already in progress"):
            async with actorflow.serving():
                pass


@pytest.mark.anyio
async def test_serving_stops_a_sync_flow_on_a_worker_thread(anyio_backend: str) -> None:
    """A sync flow run through run_sync_in_worker_thread is tracked too. Its body cannot be
    interrupted: at shutdown its queued task runs are Cancelled, the one held by a sync body is
    Crashed, and the body, asking for their results, ends the flow Failed naming the shutdown."""
    started = threading.Event()

    @task
    def slow(i: int) -> int:
        started.set()
        _spin(0.3)
        return i

    @flow(task_runner=actorflow.task_runners.ThreadPoolTaskRunner(max_workers=1))
    def sync_request() -> list[int]:
        futures = [slow.submit(i) for i in range(3)]
        return [f.result() for f in futures]

    recorder = actorflow.RunRecorder()
    outcome: list[BaseException] = []

    async def handler() -> None:
        try:
            await run_sync_in_worker_thread(sync_request)
        except actorflow.exceptions.CrashedRun as exc:
            outcome.append(exc)

    with actorflow.observe(recorder):
        async with anyio.create_task_group() as tg:
            async with actorflow.serving(grace_period=0.05) as service:
                tg.start_soon(handler)
                await anyio.to_thread.run_sync(started.wait, 5)
    assert service.statistics().flows_running == 0
    assert outcome and "shutting down" in str(outcome[0])
    finals = sorted(e.state.name for e in recorder.events if e.state.is_final())
    assert finals == ["Cancelled", "Cancelled", "Crashed", "Failed"]
    await _until_no_thread_left(2)
    assert _actorflow_threads() == []
