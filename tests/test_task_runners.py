"""Task runners: one behaviour suite run on threads, worker processes and a Dask cluster.

Whatever the runner, the flow's supervisor keeps the truth: states, retries, timeouts, caching,
``wait_for`` and futures passed between tasks must come out the same. The Dask part runs on a
real ``LocalCluster(processes=True, n_workers=2)``; worker processes are killed on purpose.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runner_tasks as rt

from actorflow import allow_failure, flow, quote, unmapped
from actorflow.exceptions import CrashedRun, TaskRunTimeoutError
from actorflow.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from actorflow.testing import VirtualClock, use_clock

RUNNERS = ["threads", "processes", "dask"]
REMOTE = ["processes", "dask"]


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    import dask
    import distributed

    # As the runner does for clusters it starts: a task whose worker died is not re-run by
    # the scheduler, so that the run's own retries decide. (``dashboard_address=None`` would
    # still try port 8787, and warn when another cluster holds it: ":0" picks a free port.)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
        )
    yield cluster
    cluster.close()


def make_runner(kind: str, request: pytest.FixtureRequest) -> TaskRunner:
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=2)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=2)
    from actorflow.task_runners import DaskTaskRunner

    cluster = request.getfixturevalue("dask_cluster")
    return DaskTaskRunner(address=cluster.scheduler_address)


@pytest.fixture(params=RUNNERS)
def runner(request: pytest.FixtureRequest) -> TaskRunner:
    return make_runner(request.param, request)


@pytest.fixture(params=REMOTE)
def remote_runner(request: pytest.FixtureRequest) -> TaskRunner:
    return make_runner(request.param, request)


def names(future: Any) -> list[str]:
    return [state.name for state in future.task_run.history()]


# -- the shared behaviour suite --------------------------------------------------------------------
def test_results_map_and_futures_as_arguments(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def pipeline() -> tuple[int, list[int], int, str]:
        one = rt.add.submit(1)
        two = rt.add.submit(one, y=one)  # futures as arguments, resolved by the supervisor
        mapped = rt.add.map([10, 20, 30], y=unmapped(two))
        summed = rt.total.submit(mapped)  # a list of futures inside an argument
        name = rt.logger_name.submit()
        assert name.result() == name.task_run.name  # get_run_logger() works in the body
        return two.result(), mapped.result(), summed.result(), name.task_run.state.name

    assert pipeline() == (2, [12, 22, 32], 66, "Completed")


def test_failure_keeps_type_message_and_final_state(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    def failing() -> Any:
        future = rt.fail.submit("boom 42")
        future.wait()
        return [future.state]

    state = failing(return_state=True)
    assert state.is_failed() and state.message == "1/1 states failed."
    (task_state,) = state.data
    assert task_state.is_failed()
    assert task_state.message == "Task run encountered an exception ValueError: boom 42"
    with pytest.raises(ValueError, match="boom 42"):
        task_state.result()


def test_retries_then_success(runner: TaskRunner, tmp_path: Path) -> None:
    hooked: list[str] = []
    task = rt.flaky.with_options(
        retry_delay_seconds=0.05, on_completion=[lambda t, run, s: hooked.append(s.name)]
    )

    @flow(task_runner=runner)
    def retrying() -> Any:
        future = task.submit(str(tmp_path / "count"), failures=2)
        future.wait()
        return quote(future)  # the future itself, not its state

    future = retrying().unquote()
    assert future.result() == 3
    assert names(future) == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
        "Completed",
    ]  # fmt: skip
    assert hooked == ["Completed"]  # hooks run in the flow's process, whatever the runner


def test_retry_delays_follow_the_flow_clock(runner: TaskRunner, tmp_path: Path) -> None:
    task = rt.flaky.with_options(retry_delay_seconds=[5, 10])

    @flow(task_runner=runner)
    def retrying() -> int:
        return task.submit(str(tmp_path / "count"), failures=2).result()  # type: ignore[no-any-return]

    clock = VirtualClock()
    with use_clock(clock):
        assert retrying() == 3
    assert clock.sleeps == [5.0, 10.0]


def test_retries_exhausted_fail(runner: TaskRunner, tmp_path: Path) -> None:
    @flow(task_runner=runner)
    def retrying() -> Any:
        future = rt.flaky.submit(str(tmp_path / "count"), failures=5)
        future.wait()
        return {"state": future.state}

    state = retrying()["state"]
    assert state.is_failed() and state.message.endswith("RuntimeError: attempt 3 failed")
    assert (tmp_path / "count").read_text() == "3"


def test_wait_for_and_failed_upstreams(runner: TaskRunner, tmp_path: Path) -> None:
    blocked, allowed, fed = (str(tmp_path / name) for name in ("blocked", "allowed", "fed"))

    @flow(task_runner=runner)
    def dag() -> list[str]:
        bad = rt.fail.submit("upstream broke")
        ok = rt.add.submit(1)
        after_bad = rt.touch.submit(blocked, wait_for=[bad])
        after_ok = rt.touch.submit(allowed, wait_for=[ok, allow_failure(bad)])
        given_bad = rt.takes.submit(bad)  # a failed future as an argument
        given_allowed = rt.takes.submit(allow_failure(bad))
        rt.touch.submit(fed, wait_for=[given_bad]).wait()
        for f in (after_bad, after_ok, given_bad, given_allowed):
            f.wait()
        return [f.state.name for f in (after_bad, after_ok, given_bad, given_allowed)] + [
            given_allowed.result()
        ]

    assert dag() == ["NotReady", "Completed", "NotReady", "Completed", "ValueError"]
    assert not Path(blocked).exists() and not Path(fed).exists()
    assert Path(allowed).read_text() == "ran"


def test_timeout_at_the_deadline_from_body_start(runner: TaskRunner, tmp_path: Path) -> None:
    release = tmp_path / "release"

    @flow(task_runner=runner)
    def timed() -> tuple[Any, list[Any]]:
        stuck = rt.wait_for_file.submit(str(release), 30)
        stuck.wait()
        state = stuck.state
        release.write_text("go")  # lets a thread runner's body end (threads cannot be stopped)
        # Three 0.6 s naps with a 1.5 s timeout on two workers: the third waits for a free
        # worker, and that wait does not count against its timeout.
        naps = rt.nap.map([0.6, 0.6, 0.6])
        naps.wait()
        return state, [f.state for f in naps]

    state, naps = timed()
    assert state.name == "TimedOut"
    assert state.message == "Task run exceeded timeout of 0.5 second(s)"
    assert isinstance(state.data, TaskRunTimeoutError)
    assert [s.name for s in naps] == ["Completed"] * 3


def test_wrong_arguments_fail_without_retries(runner: TaskRunner, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")

    @flow(task_runner=runner)
    def miscalled() -> Any:
        future = rt.retried_wrongly_called.submit(counter, "one too many")
        future.wait()
        return {"state": future.state, "history": names(future)}

    outcome = miscalled()
    state = outcome["state"]
    assert state.is_failed() and "too many positional arguments" in state.message
    assert outcome["history"] == ["Pending", "Running", "Failed"]
    assert not Path(counter).exists()  # the body never ran, and no retry ran it


def test_cache_hit_on_a_second_submission(runner: TaskRunner) -> None:
    token = uuid.uuid4().hex

    @flow(task_runner=runner)
    def twice() -> tuple[str, str, bool]:
        first = rt.cached_token.submit(token)
        first.wait()
        second = rt.cached_token.submit(token)
        same = second.result() == first.result()
        return first.state.name, second.state.name, same

    assert twice() == ("Completed", "Cached", True)


@pytest.mark.anyio
async def test_async_flow_submits_sync_tasks(runner: TaskRunner) -> None:
    @flow(task_runner=runner)
    async def mixed() -> list[int]:
        futures = rt.add.map([1, 2, 3], y=1)
        return [await f for f in futures]

    assert await mixed() == [2, 3, 4]


# -- remote runners: what crosses the process boundary ---------------------------------------------
def test_bodies_run_in_other_processes(remote_runner: TaskRunner) -> None:
    import os

    @flow(task_runner=remote_runner)
    def where() -> list[int]:
        return rt.process_id.map(range(4)).result()  # type: ignore[no-any-return]

    assert os.getpid() not in where()


def test_process_runner_batches_short_bodies_each_with_its_own_state() -> None:
    from actorflow._core import current_flow_run

    @flow(task_runner=ProcessPoolTaskRunner(max_workers=2))
    def many() -> tuple[list[int], list[str], Any]:
        futures = rt.add.map(range(300), y=1)
        results = futures.result()
        runner = current_flow_run()._runner  # type: ignore[union-attr]
        return results, sorted({f.state.name for f in futures}), runner.statistics()

    results, states, stats = many()
    assert results == list(range(1, 301)) and states == ["Completed"]
    assert stats.bodies_sent == 300 and stats.pools_started == 1
    # Short bodies share work items once their duration is known.
    assert stats.items_sent < stats.bodies_sent


def test_unpicklable_argument_fails_the_run_naming_it(remote_runner: TaskRunner) -> None:
    import threading

    @flow(task_runner=remote_runner)
    def unpicklable() -> Any:
        future = rt.takes.submit(threading.Lock())
        future.wait()
        return {"state": future.state}

    state = unpicklable()["state"]
    assert state.is_failed()
    assert isinstance(state.data, TypeError)
    assert "Task run argument 'value'" in state.message
    assert "(a lock) cannot be pickled" in state.message


def test_unpicklable_result_fails_the_run(remote_runner: TaskRunner) -> None:
    @flow(task_runner=remote_runner)
    def unpicklable() -> Any:
        future = rt.returns_lock.submit()
        future.wait()
        return {"state": future.state}

    state = unpicklable()["state"]
    assert state.is_failed() and "(a lock) cannot be pickled" in state.message


def test_killed_worker_crashes_the_run(remote_runner: TaskRunner) -> None:
    @flow(task_runner=remote_runner)
    def doomed() -> Any:
        future = rt.die.submit()
        future.wait()
        after = rt.add.submit(41, y=1)  # the runner goes on (a process pool is replaced)
        return future.state, after.result()

    state, after = doomed()
    assert state.is_crashed() and state.message.startswith("Task run crashed:")
    assert isinstance(state.data, CrashedRun)
    assert after == 42


def test_killed_worker_is_retried(remote_runner: TaskRunner, tmp_path: Path) -> None:
    @flow(task_runner=remote_runner)
    def survivor() -> Any:
        future = rt.die_once.submit(str(tmp_path / "marker"))
        future.wait()
        return quote(future)  # the future itself, not its state

    future = survivor().unquote()
    assert future.result() == "survived"
    assert names(future) == ["Pending", "Running", "Retrying", "Completed"]


# -- the runners' own API --------------------------------------------------------------------------
def test_runner_lifecycle_errors() -> None:
    runner = ProcessPoolTaskRunner(max_workers=1)
    assert repr(runner.duplicate()) == "ProcessPoolTaskRunner(max_workers=1)"
    with pytest.raises(RuntimeError, match="Task runner is not started"):
        runner.submit(None)  # type: ignore[arg-type]
    with runner:
        with pytest.raises(RuntimeError, match="This task runner is already started"):
            runner.start()
    with pytest.raises(ValueError, match="max_workers must be at least 1"):
        ProcessPoolTaskRunner(max_workers=0)


def test_dask_runner_options() -> None:
    from actorflow.task_runners import DaskTaskRunner

    with pytest.raises(ValueError, match="either an `address`"):
        DaskTaskRunner(address="tcp://127.0.0.1:1", cluster_class="distributed.LocalCluster")
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1}, max_in_flight=5)
    copy = runner.duplicate()
    assert (copy.cluster_kwargs, copy.max_in_flight) == ({"n_workers": 1}, 5)
    assert copy is not runner


def test_dask_runner_on_a_running_cluster_object(dask_cluster: Any) -> None:
    from actorflow.task_runners import DaskTaskRunner

    runner = DaskTaskRunner(cluster=dask_cluster)

    @flow(task_runner=runner)
    def shared() -> list[int]:
        return rt.add.map(range(5), y=2).result()  # type: ignore[no-any-return]

    assert shared() == [2, 3, 4, 5, 6]
    assert dask_cluster.status.name == "running"  # a cluster the runner did not start stays up
    with pytest.raises(ValueError, match="an `address` or a `cluster`, not both"):
        DaskTaskRunner(address=dask_cluster.scheduler_address, cluster=dask_cluster)


def test_dask_runner_starts_its_own_cluster() -> None:
    from actorflow.task_runners import DaskTaskRunner

    runner = DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": ":0"},
        max_in_flight=3,  # ten bodies through three slots
    )

    @flow(task_runner=runner)
    def own_cluster() -> list[int]:
        return rt.add.map(range(10), y=1).result()  # type: ignore[no-any-return]

    assert own_cluster() == list(range(1, 11))


def test_import_does_not_import_distributed() -> None:
    code = (
        "import sys, actorflow.task_runners as t\n"
        "assert 'distributed' not in sys.modules\n"
        "sys.modules['distributed'] = None\n"
        "try:\n"
        "    t.DaskTaskRunner\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert 'pip install "actorflow[dask]"' in out
