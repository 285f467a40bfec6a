"""Supervision edge cases: retries with children, nested children past the async cap, runners
that fail to start, cancellation before start, subflow parameters, nested deadlines."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
import pytest

from actorflow import flow, task
from actorflow.task_runners import ThreadPoolTaskRunner


@task
def add(x: int, y: int = 1) -> int:
    return x + y


@task
async def aadd(x: int, y: int = 1) -> int:
    await anyio.lowlevel.checkpoint()
    return x + y


def test_flow_retry_submits_normally_after_a_failed_attempt() -> None:
    attempts: list[int] = []

    @flow(retries=1)
    def retried() -> int:
        attempts.append(1)
        future = add.submit(len(attempts))
        if len(attempts) == 1:
            raise ValueError("first attempt fails after submitting")
        return future.result()

    assert retried() == 3


@pytest.mark.anyio
async def test_async_flow_retry_submits_normally(anyio_backend: str) -> None:
    attempts: list[int] = []

    @flow(retries=1)
    async def retried() -> int:
        attempts.append(1)
        future = aadd.submit(len(attempts))
        if len(attempts) == 1:
            raise ValueError("first attempt fails after submitting")
        return await future

    assert await retried() == 3


@pytest.mark.anyio
async def test_children_of_children_are_not_stuck_behind_the_async_cap(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 2)

    @task
    async def parent(x: int) -> int:
        return await aadd.submit(x)

    @flow
    async def nested() -> list[int]:
        return [await f for f in parent.map(range(6))]

    with anyio.fail_after(10):
        assert await nested() == [1, 2, 3, 4, 5, 6]


class BrokenRunner(ThreadPoolTaskRunner):
    def duplicate(self) -> BrokenRunner:
        return BrokenRunner(self.max_workers)

    def start(self) -> None:
        raise ConnectionError("cannot reach the cluster")


def test_runner_that_cannot_start_fails_the_flow_instead_of_hanging() -> None:
    futures: list[Any] = []

    @flow(task_runner=BrokenRunner())
    def broken() -> None:
        from actorflow._core import current_flow_run

        fr = current_flow_run()
        assert fr is not None
        futures.append(fr)
        add.submit(1)

    started = time.monotonic()
    state = broken(return_state=True)
    assert time.monotonic() - started < 5
    assert state.is_failed() and "cannot reach the cluster" in (state.message or "")
    assert futures[0].statistics().children_in_flight == 0


@pytest.mark.anyio
async def test_cancel_before_start_does_not_wait_for_upstream(anyio_backend: str) -> None:
    release = anyio.Event()

    @task
    async def slow() -> int:
        await release.wait()
        return 1

    @flow
    async def cancels() -> dict[str, Any]:
        upstream = slow.submit()
        down = aadd.submit(upstream)
        accepted = down.cancel()
        with anyio.fail_after(5):
            await down.wait_async()
        state = down.state
        release.set()
        return {"accepted": accepted, "state": state}

    out = await cancels()
    assert out["accepted"] is True
    assert out["state"].is_cancelled()


def test_subflow_parameters_are_resolved() -> None:
    @flow
    def child(x: int, xs: list[int]) -> tuple[str, list[str]]:
        return type(x).__name__, [type(v).__name__ for v in xs]

    @task
    def fails() -> int:
        raise ValueError("no")

    @flow
    def parent() -> dict[str, Any]:
        one = add.submit(1)
        return {
            "types": child(one, [one, add.submit(2)]),
            "not_ready": child(fails.submit(), [], return_state=True),
        }

    out = parent()
    assert out["types"] == ("int", ["int", "int"])
    assert out["not_ready"].name == "NotReady"


def test_nested_sync_flow_does_not_swallow_its_parents_deadline() -> None:
    reached: list[str] = []

    @flow(timeout_seconds=10)
    def inner() -> None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.01)
        reached.append("inner finished")

    @flow(timeout_seconds=0.2)
    def outer() -> None:
        inner()
        reached.append("outer went on")

    started = time.monotonic()
    state = outer(return_state=True)
    assert time.monotonic() - started < 2.5
    assert state.name == "TimedOut"
    assert "0.2 second(s)" in (state.message or "")
    assert reached == []


def test_idle_pool_threads_exit_promptly() -> None:
    from actorflow._core import WorkerPool

    pool = WorkerPool(max_workers=8, idle_timeout=0.1, name="actorflow-idle-test")
    done = threading.Barrier(9)
    for _ in range(8):
        pool.submit(done.wait)
    done.wait(5)
    deadline = time.monotonic() + 2
    while pool.statistics().threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.statistics().threads == 0


def test_future_resolves_after_the_runs_hooks() -> None:
    seen: list[str] = []

    @task(on_completion=[lambda t, r, s: seen.append("hook")])
    def hooked() -> int:
        return 1

    @flow
    def my_flow() -> list[str]:
        hooked.submit().result()
        return list(seen)

    assert my_flow() == ["hook"]


@pytest.mark.anyio
async def test_async_hooks_finish_before_await_returns(anyio_backend: str) -> None:
    seen: list[str] = []

    async def hook(t: Any, r: Any, s: Any) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append("hook")

    @task(on_completion=[hook])
    async def hooked() -> int:
        return 1

    @flow
    async def my_flow() -> list[str]:
        await hooked.submit()
        return list(seen)

    assert await my_flow() == ["hook"]


@pytest.mark.anyio
async def test_return_state_and_as_completed_in_async_flows(anyio_backend: str) -> None:
    from actorflow.futures import as_completed

    release = anyio.Event()

    @task
    async def waits(x: int) -> int:
        await release.wait()
        return x

    @task
    async def releases() -> None:
        await anyio.sleep(0.01)
        release.set()

    @flow
    async def my_flow() -> dict[str, Any]:
        state = aadd.submit(1, return_state=True)  # must not deadlock the flow's loop
        states = aadd.map([1, 2], return_state=True)
        pending = waits.map([1, 2])
        releases.submit()
        order = [f.result() for f in as_completed(pending, timeout=10)]  # suspends the body
        return {"one": state, "many": states, "completed": sorted(order)}

    out = await my_flow()
    assert await out["one"].result() == 2  # in async code, as in Prefect, an awaitable
    assert [s.value() for s in out["many"]] == [2, 3]
    assert out["completed"] == [1, 2]


def test_interrupt_in_async_task_of_sync_flow_keeps_the_runtime_alive() -> None:
    @task
    async def exits() -> None:
        raise SystemExit(3)

    @flow
    def first() -> Any:
        future = exits.submit()
        future.wait()
        return {"state": future.state}

    @flow
    def second() -> int:
        return aadd.submit(1).result()

    state = first()["state"]
    assert state.is_crashed() and "system exit" in (state.message or "")
    assert second() == 2


def test_sync_subflow_inside_async_task_of_sync_flow() -> None:
    @flow
    def inner() -> int:
        return aadd.submit(1).result()

    @task
    async def calls_inner() -> int:
        return inner()

    @flow
    def outer() -> int:
        return calls_inner.submit().result()

    assert outer() == 2


# -- the in-flight cap, cancellation and hooks ---------------------------------------------------
@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_backlog_run_freed_by_a_runtime_loop_child_starts_on_its_own_loop(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 1)

    @task
    async def child() -> int:
        return 1

    @task
    async def parent() -> str:
        # Blocks this (the flow's) loop on a child that runs on the runtime loop; that child's
        # end frees a slot, from the runtime loop's thread, for a run of the flow's loop.
        return child.submit(return_state=True).name

    @task
    async def backlogged() -> str:
        return "ran"

    @flow
    async def capped() -> tuple[str, str]:
        first = parent.submit()
        second = backlogged.submit()  # waits in the backlog: the cap is full
        return await first, await second

    assert await capped() == ("Completed", "ran")


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_return_state_submit_with_a_full_cap_does_not_deadlock(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 2)
    release = anyio.Event()

    @task
    async def held() -> int:
        await release.wait()
        return 1

    @task
    async def quick() -> int:
        return 42

    @flow
    async def blocked() -> tuple[str, list[int]]:
        futures = [held.submit() for _ in range(2)]  # the cap is full, on this very loop
        name = quick.submit(return_state=True).name  # blocks this loop until quick is done
        release.set()
        return name, [await f for f in futures]

    assert await blocked() == ("Completed", [1, 1])


@pytest.mark.anyio
async def test_two_cancels_of_one_run_cancel_that_run_only(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 2)
    release = anyio.Event()
    started = anyio.Event()

    @task
    async def work(i: int) -> int:
        started.set()
        await release.wait()
        return i

    @flow
    async def cancelled_twice() -> tuple[list[str], str]:
        futures = [work.submit(i) for i in range(4)]  # two run, two wait in the backlog
        await started.wait()
        assert futures[0].cancel() and futures[0].cancel()
        release.set()
        for future in futures:
            await future.wait_async()
        later = work.submit(9)
        await later.wait_async()
        return [f.state.name for f in futures], later.state.name

    states, later = await cancelled_twice()
    assert states == ["Cancelled", "Completed", "Completed", "Completed"]
    assert later == "Completed"


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_cancel_during_an_async_completion_hook_leaves_the_run_completed(
    anyio_backend: str,
) -> None:
    in_hook = anyio.Event()
    leave_hook = anyio.Event()

    async def hook(task_: Any, run: Any, state: Any) -> None:
        in_hook.set()
        await leave_hook.wait()

    @task(on_completion=[hook])
    async def hooked() -> int:
        return 1

    @task
    async def sibling() -> int:
        await leave_hook.wait()
        return 2

    @flow
    async def cancel_in_hook() -> tuple[bool, str, str]:
        a, b = hooked.submit(), sibling.submit()
        await in_hook.wait()
        cancelled = a.cancel()
        leave_hook.set()
        await a.wait_async()
        await b.wait_async()
        return cancelled, a.state.name, b.state.name

    assert await cancel_in_hook() == (False, "Completed", "Completed")


class _Abort(BaseException):
    """Not an Exception: it goes through the flow's task group, which cancels every child."""


@pytest.mark.anyio
@pytest.mark.timeout(30)
async def test_children_cancelled_before_their_first_step_end_cancelled(
    anyio_backend: str,
) -> None:
    seen: list[Any] = []

    @task
    async def never() -> int:
        return 1

    @flow
    async def aborted() -> None:
        seen.extend(never.submit() for _ in range(3))
        raise _Abort  # no await in between: the children's tasks have not taken a step

    with pytest.raises(BaseException) as raised:  # as is, or in a group, by backend
        await aborted()
    error = raised.value
    assert isinstance(error, _Abort) or (
        isinstance(error, BaseExceptionGroup) and error.subgroup(_Abort) is not None
    )
    # Never left Pending. On asyncio the group cancels a task before its first step (its
    # coroutine never runs); trio starts it, and a body without a checkpoint completes.
    assert all(f.state.is_final() for f in seen)
    if anyio_backend == "asyncio":
        assert [f.state.name for f in seen] == ["Cancelled"] * 3


RACE_SCRIPT = r'''
import importlib.abc, importlib.machinery, sys, threading, time

started = threading.Event()

class SlowLoader(importlib.abc.Loader):
    """Leaves sniffio in sys.modules half made for a while, as another thread's import does."""
    def __init__(self, real):
        self.real = real
    def create_module(self, spec):
        return self.real.create_module(spec)
    def exec_module(self, module):
        started.set()
        time.sleep(0.5)
        self.real.exec_module(module)

class SlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "sniffio":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        spec.loader = SlowLoader(spec.loader)
        return spec

assert "sniffio" not in sys.modules
sys.meta_path.insert(0, SlowFinder())

from actorflow import flow, task

@task
async def child(x):
    return x * 2

@flow
def parent():
    return child.submit(21).result(timeout=10)

importer = threading.Thread(target=__import__, args=("sniffio",))
importer.start()
started.wait()
print(parent())
importer.join()
'''


def test_async_child_of_a_sync_flow_starts_while_another_thread_imports_sniffio() -> None:
    from support import run_python

    result = run_python(RACE_SCRIPT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_an_error_while_starting_an_async_child_ends_it_crashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actorflow._core import _spawn

    def broken_start(self: Any, driver: Any, run: Any) -> None:
        raise AttributeError("partially initialized module")

    # A sync flow's async children start in a task group on the runtime's asyncio loop.
    monkeypatch.setattr(_spawn._AsyncioGroup, "start", broken_start)

    @flow
    def parent() -> tuple[str, str | None]:
        future = aadd.submit(1)
        future.wait(10)
        return future.state.name, future.state.message

    assert parent() == (
        "Crashed",
        "Could not start the task run: AttributeError: partially initialized module",
    )


def test_an_interrupt_on_a_worker_thread_is_reported_not_swallowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def exits() -> None:
        raise SystemExit(3)

    states: list[Any] = []

    @flow
    def host() -> None:
        states.append(exits.submit(return_state=True))

    with caplog.at_level(logging.WARNING, logger="actorflow"):
        host(return_state=True)
    assert states[0].is_crashed()
    reports = [r for r in caplog.records if "was interrupted" in r.getMessage()]
    assert len(reports) == 1 and reports[0].levelname == "WARNING"
    assert reports[0].getMessage().startswith("task run 'exits-")
