"""Background tasks: ``.delay()``, task workers, and the durable queue behind them.

Every test runs on both brokers: the SQLite default (a file under the test's ACTORFLOW_HOME) and
Redis on loopback (a namespace of its own). Leases are short so that redelivery is quick.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import background_tasks as bt
import pytest
from support import isolated_queue

from actorflow import RunRecorder
from actorflow._queue import BackgroundTaskFuture, broker, client
from actorflow._queue._broker import Delivery, Record
from actorflow.exceptions import CrashedRun, UnfinishedRun
from actorflow.futures import PrefectDistributedFuture
from actorflow.task_worker import TaskWorker, serve

TESTS = Path(__file__).resolve().parent


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The broker under test, isolated: its own SQLite file, or its own Redis namespace."""
    with isolated_queue(request.param, monkeypatch, ACTORFLOW_QUEUE_LEASE="1.0") as broker_name:
        yield broker_name


@contextlib.contextmanager
def running(*tasks: Any, **options: Any) -> Iterator[TaskWorker]:
    """A task worker on a thread of this process, stopped at the end of the block."""
    worker = TaskWorker(*tasks, **options)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive()


def worker_process(*tasks: str, limit: int = 10, grace: float = 10.0) -> subprocess.Popen[str]:
    """``actorflow worker`` in a process of its own, serving ``background_tasks`` tasks."""
    env = dict(os.environ, PYTHONPATH=str(TESTS), ACTORFLOW_LOGGING_LEVEL="WARNING")
    command = [sys.executable, "-m", "actorflow", "worker"]
    command += [f"background_tasks:{t}" for t in tasks]
    command += ["--limit", str(limit), "--grace", str(grace)]
    return subprocess.Popen(command, cwd=TESTS, env=env, text=True)


def wait_for_file(path: Path, text: str = "", timeout: float = 30) -> None:
    """Until another process wrote ``path`` (containing ``text``)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{path} not written"
        time.sleep(0.01)


def claim_one(name: str, task_key: str, timeout: float = 10) -> tuple[list[Delivery], ...]:
    """Claim at the broker as worker ``name`` until something comes (a lease expires)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claimed, dead = broker().claim(name, [task_key], 1, 0.5)
        if claimed or dead:
            return claimed, dead
    raise AssertionError("nothing to claim")


def completed(value: Any) -> Record:
    return Record("COMPLETED", "Completed", time.time_ns(), None, pickle.dumps(value), True)


# -- delay and serve --------------------------------------------------------------------------
def test_delay_before_serve(queue: str) -> None:
    futures = [bt.add.delay(1, 2), bt.multiply.delay(3, 4), bt.fail.delay("boom")]
    mapped = bt.add.map([1, 2, 3], [10, 20, 30], deferred=True)
    assert [f.state.name for f in futures] == ["Scheduled"] * 3
    client().flush()
    assert [f.state.name for f in futures] == ["Scheduled"] * 3  # written, waiting
    with running(bt.add, bt.multiply, bt.fail):
        assert futures[0].result(timeout=30) == 3
        assert futures[1].result(timeout=30) == 12  # an async task
        futures[2].wait(30)
        assert [f.result(timeout=30) for f in mapped] == [11, 22, 33]
    assert futures[2].state.is_failed()
    with pytest.raises(ValueError, match="boom"):
        futures[2].result()
    assert isinstance(futures[2].result(raise_on_failure=False), ValueError)


def test_apply_async_waits_for_upstream_and_retries_count_per_delivery(
    queue: str, tmp_path: Path
) -> None:
    first = bt.add.delay(1, 1)
    second = bt.add.apply_async((2,), {"b": 2}, wait_for=[first])
    flaky = bt.flaky.delay(str(tmp_path / "flaky"))
    with running(bt.add, bt.flaky):
        assert second.result(timeout=30) == 4
        assert flaky.result(timeout=30) == "retried"  # the task's own retries, in one delivery
    assert first.state.is_completed()


def test_futures_as_arguments_are_resolved(queue: str) -> None:
    first = bt.add.delay(1, 1)
    second = bt.add.delay(first, 10)  # the worker waits for first, then passes its result
    failed = bt.fail.delay("upstream")
    after_failure = bt.add.delay(failed, 1)
    with running(bt.add, bt.fail):
        assert second.result(timeout=30) == 12
        after_failure.wait(30)
    assert after_failure.state.name == "NotReady"  # an upstream that failed: never ran
    assert after_failure.done()
    with pytest.raises(UnfinishedRun):
        after_failure.result(timeout=5)


def test_a_run_waiting_for_upstream_holds_only_its_own_slot(queue: str) -> None:
    first = bt.other.delay(1)
    second = bt.add.apply_async((2,), {"b": 2}, wait_for=[first])
    client().flush()
    with running(bt.add, limit=2):
        third = bt.add.delay(5, 5)
        assert third.result(timeout=30) == 10  # claimed and run while the second waits
        assert second.state.name == "Pending"
        with running(bt.other):
            assert second.result(timeout=30) == 4


def test_future_from_id_and_pickled(queue: str) -> None:
    future = bt.add.delay(20, 22)
    with running(bt.add):
        future.wait(30)
    by_id = BackgroundTaskFuture(future.task_run_id)
    assert by_id.result(timeout=5) == 42
    assert BackgroundTaskFuture(str(future.task_run_id)).result(timeout=5) == 42
    with pytest.raises(ValueError, match="not the id of a background task run"):
        BackgroundTaskFuture("nope")
    assert pickle.loads(pickle.dumps(future)).result(timeout=5) == 42
    assert PrefectDistributedFuture is BackgroundTaskFuture


def test_observers_see_scheduled_then_the_worker_transitions(queue: str) -> None:
    with RunRecorder() as delayed:
        future = bt.add.delay(1, 2)
    assert delayed.history(future.task_run_id) == ["Scheduled"]
    with RunRecorder() as served, running(bt.add):
        future.wait(30)
    assert served.history(future.task_run_id) == ["Pending", "Running", "Completed"]


def test_limit_is_honoured(queue: str) -> None:
    bt.concurrency.update(now=0, peak=0)
    futures = bt.counted.map([0.05] * 8, deferred=True)
    with running(bt.counted, limit=2) as worker:
        for f in futures:
            f.wait(30)
    assert worker.statistics().finished == 8  # counted once the worker has stopped
    assert all(f.state.is_completed() for f in futures)
    assert bt.concurrency["peak"] == 2


def test_unserializable_argument_fails_at_delay(queue: str) -> None:
    with pytest.raises(TypeError, match=r"argument 'a' \(lock\) cannot be serialized"):
        bt.add.delay(threading.Lock(), 1)
    with pytest.raises(Exception, match="missing a required argument"):
        bt.add.delay(1)
    client().flush()
    assert broker().queued() == {}


def test_unknown_task_is_left_for_a_worker_that_serves_it(
    queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    future = bt.add.delay(2, 3)
    client().flush()
    with caplog.at_level(logging.WARNING, logger="actorflow.task_worker"):
        serve(bt.other, timeout=0.5)
    assert bt.add.task_key in caplog.text and "left for another worker" in caplog.text
    assert future.state.name == "Scheduled"
    assert broker().queued() == {bt.add.task_key: 1}
    with running(bt.add):
        assert future.result(timeout=30) == 5


# -- across processes, leases and fencing ------------------------------------------------------
@pytest.mark.slow
def test_results_across_processes(queue: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    produced = subprocess.run(
        [sys.executable, "-c", "import background_tasks as t; print(t.add.delay(2, 3)._id)"],
        cwd=TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    future = BackgroundTaskFuture(produced.stdout.strip())
    assert future.state.name == "Scheduled"  # written before the producer exited
    worker = worker_process("add")
    try:
        assert future.result(timeout=30) == 5
        assert future.state.is_completed()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0


@pytest.mark.slow
def test_killed_workers_run_is_finished_by_another(queue: str, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    future = bt.until_killed.delay(str(marker))
    first = worker_process("until_killed")
    try:
        wait_for_file(marker)
        deadline = time.monotonic() + 10
        while not future.state.is_running():  # the worker records Running as it writes
            assert time.monotonic() < deadline, future.state
            time.sleep(0.01)
    finally:
        first.kill()
        first.wait(30)
    with running(bt.until_killed) as second:
        assert future.result(timeout=30) == "second"
    stats = second.statistics()
    assert (stats.finished, stats.fenced) == (1, 0)
    assert future.state.name == "Completed"


@pytest.mark.slow
def test_journal_keeps_every_delivery_of_a_redelivered_run(
    queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorflow.journal import Journal

    journal_path = tmp_path / "journal.db"
    monkeypatch.setenv("ACTORFLOW_JOURNAL", str(journal_path))  # the workers' journal
    marker = tmp_path / "started"
    future = bt.until_killed.delay(str(marker))
    first = worker_process("until_killed")
    try:
        wait_for_file(marker)
        reader = Journal.open(journal_path)
        deadline = time.monotonic() + 10
        while True:  # the first worker's Running is in the journal before it dies
            try:
                if reader.run(future._id).state_name == "Running":
                    break
            except KeyError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        first.kill()
        first.wait(30)
    second = worker_process("until_killed")
    try:
        assert future.result(timeout=30) == "second"
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    record = reader.run(future._id)
    names = [t.state_name for t in record.transitions]
    assert names == ["Pending", "Running", "Pending", "Running", "Completed"], names
    assert record.state_name == "Completed" and record.pid == second.pid
    reader.close()


def test_stale_worker_is_fenced(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "0.2")
    future = bt.add.delay(1, 2)
    client().flush()
    b = broker()
    (stale,), _ = claim_one("paused-worker", bt.add.task_key)
    (fresh,), _ = claim_one("live-worker", bt.add.task_key)  # the lease expired: taken over
    assert fresh.token == stale.token + 1
    assert b.renew("paused-worker", [stale]) == [stale]  # its lease is gone
    assert b.finish([(stale, completed("stale"))]) == [False]
    assert b.renew("live-worker", [fresh]) == []
    assert b.finish([(fresh, completed(3))]) == [True]
    assert b.finish([(fresh, completed("again"))]) == [False]  # the first write wins
    assert future.result(timeout=5) == 3


def test_heartbeat_keeps_a_long_run_leased(
    queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "0.6")  # a heartbeat every 0.2 s
    marker = tmp_path / "slow"
    future = bt.slow.delay(str(marker), 1.5)  # two and a half leases long
    with running(bt.slow) as first, running(bt.slow) as second:
        assert future.result(timeout=30) == "done"
    assert marker.read_text().count("started") == 1  # never taken over
    assert first.statistics().fenced + second.statistics().fenced == 0


def test_dead_letter_after_max_deliveries(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "0.2")
    monkeypatch.setenv("ACTORFLOW_QUEUE_MAX_DELIVERIES", "2")
    future = bt.add.delay(1, 2)
    client().flush()
    for token in (1, 2):  # two workers take it and vanish
        (delivery,), _ = claim_one(f"vanishing-{token}", bt.add.task_key)
        assert delivery.token == token
    claimed, dead = claim_one("third", bt.add.task_key)
    assert claimed == [] and [d.id for d in dead] == [future._id]
    state = future.state
    assert state.is_crashed() and "dead-lettered after 2 deliveries" in (state.message or "")
    with pytest.raises(CrashedRun, match="dead-lettered"):
        future.result(timeout=5)


# -- shutdown ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigterm_lets_the_running_run_finish(queue: str, tmp_path: Path) -> None:
    marker = tmp_path / "slow"
    running_one = bt.slow.delay(str(marker), 0.5)
    client().flush()
    worker = worker_process("slow", limit=1)
    try:
        wait_for_file(marker, "started")
        waiting = bt.slow.delay(str(marker), 0.0)
        client().flush()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert running_one.result(timeout=5) == "done"
    assert waiting.state.name == "Scheduled"  # not taken: left for the next worker
    with running(bt.slow):
        assert waiting.result(timeout=30) == "done"


def test_runs_past_the_grace_go_to_another_worker(queue: str, tmp_path: Path) -> None:
    marker = tmp_path / "slow"
    future = bt.slow.delay(str(marker), 1.0)
    with running(bt.slow, grace=0.05):
        wait_for_file(marker, "started")
    assert future.state.name == "Scheduled"  # released, to run again
    with running(bt.slow):
        assert future.result(timeout=30) == "done"


def test_serve_returns_after_its_timeout(queue: str) -> None:
    started = time.monotonic()
    serve(bt.add, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5


# -- from event loops --------------------------------------------------------------------------
@pytest.mark.anyio
async def test_delay_from_async_code(queue: str, anyio_backend: str) -> None:
    future = bt.add.delay(4, 5)  # no I/O on the event loop
    assert future.state.name == "Scheduled"
    import anyio

    async with anyio.create_task_group() as tg:

        async def worker() -> None:
            await serve(bt.add, bt.multiply)  # until cancelled: it winds down, then returns

        tg.start_soon(worker)
        with anyio.fail_after(30):
            assert await future.result_async() == 9
            other = bt.multiply.delay(6, 7)
            assert await other.result_async() == 42
        tg.cancel_scope.cancel()
