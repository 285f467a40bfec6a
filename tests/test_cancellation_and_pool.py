"""Cancellation leaves nothing running; nested submits never deadlock a bounded pool; scale."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import anyio
import pytest
from support import run_python

from actorflow import flow, task
from actorflow._core import WorkerPool
from actorflow.exceptions import CancelledRun
from actorflow.task_runners import ThreadPoolTaskRunner


def test_cancel_queued_sync_run_never_runs_it() -> None:
    gate = threading.Event()
    ran: list[str] = []

    @task
    def blocker() -> None:
        assert gate.wait(5)

    @task
    def queued() -> None:
        ran.append("queued")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def my_flow() -> dict[str, Any]:
        first = blocker.submit()
        second = queued.submit()
        cancelled = second.cancel()
        gate.set()
        first.wait()
        second.wait()
        return {"cancelled": cancelled, "state": second.state}

    out = my_flow()
    assert out["cancelled"] is True
    assert out["state"].is_cancelled()
    assert ran == []
    with pytest.raises(CancelledRun):
        out["state"].result()


def test_cancel_running_sync_run_is_refused_and_finishes() -> None:
    started, gate = threading.Event(), threading.Event()

    @task
    def running() -> int:
        started.set()
        assert gate.wait(5)
        return 1

    @flow
    def my_flow() -> dict[str, Any]:
        future = running.submit()
        assert started.wait(5)
        refused = future.cancel()
        gate.set()
        return {"cancel": refused, "result": future.result()}

    assert my_flow() == {"cancel": False, "result": 1}


@pytest.mark.anyio
async def test_cancel_running_async_run(anyio_backend: str) -> None:
    started = anyio.Event()

    @task
    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    @flow
    async def my_flow() -> dict[str, Any]:
        future = forever.submit()
        await started.wait()
        accepted = future.cancel()
        await future.wait_async()
        return {"accepted": accepted, "state": future.state, "done": future.cancel()}

    out = await my_flow()
    assert out["accepted"] is True and out["done"] is False
    assert out["state"].is_cancelled()
    assert out["state"].message == "cancelled through its future"


@pytest.mark.anyio
async def test_cancelling_the_host_cancels_every_child(anyio_backend: str) -> None:
    started = anyio.Event()
    futures: list[Any] = []
    flow_runs: list[Any] = []

    @task
    async def forever() -> None:
        await anyio.sleep_forever()

    @task
    async def nested_parent() -> None:
        futures.append(forever.submit())
        started.set()
        await anyio.sleep_forever()

    @flow
    async def my_flow() -> None:
        from actorflow._core import current_run

        flow_runs.append(current_run.get())
        futures.extend(forever.submit() for _ in range(3))
        futures.append(nested_parent.submit())
        await anyio.sleep_forever()

    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(my_flow)
            await started.wait()
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert len(futures) == 5
    assert all(f.state.is_cancelled() for f in futures), [f.state for f in futures]
    (run,) = flow_runs
    assert run.state.is_cancelled()
    assert run.statistics().children_in_flight == 0


def test_flow_body_failure_cancels_queued_children(no_leaked_threads: None) -> None:
    gate, started = threading.Event(), threading.Event()
    futures: list[Any] = []

    @task
    def blocker() -> None:
        started.set()
        assert gate.wait(5)

    @task
    def never_runs() -> None:
        raise AssertionError("should have been cancelled")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def my_flow() -> None:
        futures.append(blocker.submit())
        futures.extend(never_runs.submit() for _ in range(3))
        assert started.wait(5)  # the blocker holds the only worker
        threading.Timer(0.05, gate.set).start()
        raise ValueError("body failed")

    assert my_flow(return_state=True).is_failed()
    assert futures[0].state.is_completed()  # a running sync body is waited for
    assert all(f.state.is_cancelled() for f in futures[1:])


def test_flow_leaves_no_worker_thread_behind(no_leaked_threads: None) -> None:
    @task
    def work(x: int) -> int:
        return x

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def my_flow() -> list[int]:
        return work.map(range(50)).result()

    assert my_flow() == list(range(50))


def test_flows_reuse_parked_worker_threads() -> None:
    from actorflow._core import runtime

    @task
    def where() -> int:
        return threading.get_ident()

    @flow
    def sequential() -> set[int]:
        return {where.submit().result() for _ in range(5)}

    first = sequential()
    threads_after_first = runtime.threads.statistics().threads
    second = sequential()
    # One task at a time needs one thread, and the second flow finds it parked.
    assert len(first) == 1 and second == first
    assert runtime.threads.statistics().threads == threads_after_first


def test_parked_threads_exit_after_their_idle_timeout() -> None:
    from actorflow._core._pool import ThreadCache

    cache = ThreadCache(idle_timeout=0.05, name="actorflow-test-idle")
    pool = WorkerPool(max_workers=4, name="actorflow-test-pool", threads=cache)
    gate = threading.Barrier(5)
    for _ in range(4):
        pool.submit(gate.wait, 5)
    gate.wait(5)
    pool.shutdown()
    assert pool.statistics().threads == 0
    exited = threading.Event()

    def poll() -> None:
        while cache.statistics().threads:
            threading.Event().wait(0.01)
        exited.set()

    threading.Thread(target=poll, daemon=True).start()
    assert exited.wait(5), cache.statistics()


def test_drain_ends_parked_threads_now_and_busy_ones_when_their_work_ends() -> None:
    from actorflow._core._pool import ThreadCache
    from actorflow._core._statistics import ThreadCacheStatistics

    cache = ThreadCache(idle_timeout=60, name="actorflow-test-drain")
    pool = WorkerPool(max_workers=2, name="actorflow-test-drain-pool", threads=cache)
    started, release = threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        assert release.wait(5)

    pool.submit(threading.Event().set)  # one thread, parked once the item is done
    pool.submit(busy)
    assert started.wait(5)
    # The busy thread is named and left running; the parked one exits at once, not after the
    # 60 s idle timeout.
    assert cache.drain(0.05) == ["actorflow-test-drain-pool"]
    assert cache.statistics() == ThreadCacheStatistics(threads=1, idle=0)
    release.set()
    pool.shutdown()
    assert cache.drain(5) == []  # the busy one exited when its work ended, without parking
    assert cache.statistics().threads == 0


def test_shutdown_waits_for_queued_and_running_work() -> None:
    pool = WorkerPool(max_workers=1, name="actorflow-test-shutdown")
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def slow() -> None:
        started.set()
        assert release.wait(5)
        done.append(1)

    pool.submit(slow)
    pool.submit(done.append, 2)
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    pool.shutdown()  # returns only once both items ran
    assert done == [1, 2]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(done.append, 3)


def test_a_forked_child_starts_its_own_worker_threads() -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    @flow
    def doubled() -> list[int]:
        return double.map(range(8)).result()

    assert doubled() == [2 * x for x in range(8)]  # the parent has parked threads now
    pid = os.fork()
    if pid == 0:  # the child: the parent's parked threads do not exist here
        signal.alarm(20)  # a hand-off to a thread that is not there would hang
        code = 0 if doubled() == [2 * x for x in range(8)] else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_shutdown_from_one_of_the_pools_own_workers_waits_for_the_others() -> None:
    pool = WorkerPool(max_workers=2, name="actorflow-test-self-shutdown")
    other_started = threading.Event()
    release_other = threading.Event()
    finished: list[str] = []
    shut = threading.Event()

    def other() -> None:
        other_started.set()
        assert release_other.wait(5)
        finished.append("other")

    def shutter() -> None:
        assert other_started.wait(5)
        threading.Timer(0.05, release_other.set).start()
        pool.shutdown()  # from a worker of this pool: waits for the other worker only
        finished.append("shutdown")
        shut.set()

    pool.submit(other)
    pool.submit(shutter)
    assert shut.wait(10), pool.statistics()
    assert finished == ["other", "shutdown"]


def test_a_thread_that_cannot_start_loses_no_work() -> None:
    from actorflow._core._pool import ThreadCache

    class Exhausted(ThreadCache):
        """One thread can be started, and no more."""

        asked = 0

        def run(self, loop: Any) -> None:
            self.asked += 1
            if self.asked > 1:
                raise RuntimeError("can't start new thread")
            super().run(loop)

    pool = WorkerPool(max_workers=4, name="actorflow-test-exhausted", threads=Exhausted(0.5))
    ran: list[str] = []
    gate = threading.Event()
    started = threading.Event()

    def first() -> None:
        started.set()
        assert gate.wait(5)
        ran.append("first")

    pool.submit(first)
    assert started.wait(5)
    for name in "abc":  # queued behind "first"; more threads are asked for, in vain
        pool.submit(ran.append, name)
    gate.set()
    pool.shutdown()
    assert ran == ["first", "a", "b", "c"]  # all on the one thread there is
    assert pool.statistics().threads == 0


def test_a_forked_child_forgets_the_threads_of_every_cache() -> None:
    from actorflow._core._pool import ThreadCache

    pool = WorkerPool(max_workers=2, name="actorflow-test-fork", threads=ThreadCache(30))
    done = threading.Event()
    pool.submit(done.set)
    assert done.wait(5)  # the cache now has a parked thread, in this process only
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        ran = threading.Event()
        pool.submit(ran.set)
        os._exit(0 if ran.wait(10) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pool.shutdown()


def test_nested_submits_under_pool_of_one_finish() -> None:
    @task
    def leaf(x: int) -> int:
        return x

    @task
    def middle(x: int) -> int:
        return leaf.submit(x).result() + 1

    @task
    def top(x: int) -> int:
        futures = [middle.submit(x + i) for i in range(3)]
        return sum(f.result() for f in futures)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def my_flow() -> list[int]:
        return [f.result() for f in [top.submit(i) for i in range(4)]]

    assert my_flow() == [3 * i + 6 for i in range(4)]


def test_a_worker_waiting_on_a_queued_child_runs_it_itself() -> None:
    # Work stealing: with one worker, the parent's thread runs each queued child as it waits for
    # it, instead of handing its slot to another thread.
    threads: dict[str, int] = {}

    @task
    def child(x: int) -> int:
        threads[f"child{x}"] = threading.get_ident()
        return x

    @task
    def parent() -> int:
        threads["parent"] = threading.get_ident()
        futures = [child.submit(x) for x in range(3)]
        return sum(f.result() for f in futures)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=1))
    def my_flow() -> int:
        return parent.submit().result()

    assert my_flow() == 3
    assert set(threads.values()) == {threads["parent"]}


def test_every_child_runs_once_whether_stolen_or_taken() -> None:
    # Parents race the pool's other workers for their children: each body runs exactly once.
    calls: list[int] = []
    lock = threading.Lock()

    @task
    def child(x: int) -> int:
        with lock:
            calls.append(x)
        return x

    @task
    def parent(base: int) -> int:
        futures = [child.submit(base + i) for i in range(10)]
        return sum(f.result() for f in futures)

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def my_flow() -> int:
        return sum(f.result() for f in [parent.submit(b) for b in range(0, 2000, 10)])

    assert my_flow() == sum(range(2000))
    assert sorted(calls) == list(range(2000))


def test_recursive_submits_do_not_deadlock() -> None:
    @task
    def countdown(n: int) -> int:
        if n == 0:
            return 0
        return countdown.submit(n - 1).result() + 1

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def my_flow() -> int:
        return countdown.submit(33).result()

    assert my_flow() == 33


def test_pool_bounds_running_bodies() -> None:
    pool = WorkerPool(max_workers=3, name="actorflow-test")
    running = 0
    peak = 0
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def body() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.001)
        with lock:
            running -= 1
        done.release()

    for _ in range(60):
        pool.submit(body)
    for _ in range(60):
        assert done.acquire(timeout=5)
    stats = pool.statistics()
    pool.shutdown()
    assert peak <= 3
    assert stats.threads <= 3
    assert pool.statistics().threads == 0


def test_ten_thousand_mapped_sync_runs() -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    @flow
    def my_flow() -> list[int]:
        return inc.map(range(10_000)).result()

    assert my_flow() == list(range(1, 10_001))


@pytest.mark.anyio
async def test_ten_thousand_mapped_async_runs(anyio_backend: str) -> None:
    @task
    async def inc(x: int) -> int:
        return x + 1

    @flow
    async def my_flow() -> list[int]:
        futures = inc.map(range(10_000))
        return [await f for f in futures]

    assert await my_flow() == list(range(1, 10_001))


@pytest.mark.anyio
async def test_async_children_beyond_the_limit_wait_in_a_backlog(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 4)
    running = 0
    peak = 0

    @task
    async def tracked(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()
        running -= 1
        return x

    @flow
    async def my_flow() -> list[int]:
        futures = tracked.map(range(50))
        return [await f for f in futures]

    assert await my_flow() == list(range(50))
    assert peak == 4


@pytest.mark.anyio
async def test_backlogged_children_are_cancelled_with_their_flow(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow._core import _flow_run

    monkeypatch.setattr(_flow_run, "MAX_ASYNC_IN_FLIGHT", 2)
    futures: list[Any] = []

    @task
    async def forever(x: int) -> None:
        await anyio.sleep_forever()

    @flow(timeout_seconds=0.05)
    async def my_flow() -> None:
        futures.extend(forever.map(range(10)))
        await anyio.sleep_forever()

    assert (await my_flow(return_state=True)).name == "TimedOut"
    assert all(f.state.is_cancelled() for f in futures)


def test_sync_flow_submits_async_tasks() -> None:
    @task
    async def double(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return 2 * x

    @task
    def plus_one(x: int) -> int:
        return x + 1

    @flow
    def my_flow() -> list[int]:
        doubled = double.map([1, 2, 3])
        return plus_one.map(doubled).result()

    assert my_flow() == [3, 5, 7]


FORK_THEN_RUN = """
import os, sys, asyncio
from actorflow import flow, task

@task
async def ainc(x):
    await asyncio.sleep(0)
    return x + 1

@task
def inc(x):
    return x + 1

@flow
def both(x):
    # an async task of a sync flow runs on the runtime loop's thread
    return ainc.submit(x).result() + inc.submit(x).result()

assert both(1) == 4          # the parent's runtime loop and worker threads are running
pid = os.fork()
if pid == 0:
    import signal
    signal.alarm(20)  # a child that hangs must not outlive the test
    try:
        ok = both(10) == 22  # the child has none of those threads: it starts its own
    except BaseException:
        os._exit(3)
    os._exit(0 if ok else 2)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_runs_flows_with_async_tasks() -> None:
    result = run_python(FORK_THEN_RUN, timeout=30)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "0", result.stderr[-2000:]
