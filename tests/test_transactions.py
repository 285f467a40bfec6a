"""Transactions (``actorflow.transactions``): Prefect 3's API and behaviour, task runs staging
their results and hooks in them, SERIALIZABLE isolation across threads and processes, and
commits that are atomic on local storage even when the process is killed mid-commit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import txn_tasks
from test_task_runners import dask_cluster as dask_cluster  # the cluster fixture
from test_task_runners import make_runner

from actorflow import flow, task
from actorflow.cache_policies import INPUTS
from actorflow.exceptions import ConfigurationError
from actorflow.locking.memory import MemoryLockManager
from actorflow.results import ResultStore
from actorflow.task_runners import ThreadPoolTaskRunner
from actorflow.transactions import (
    CommitMode,
    IsolationLevel,
    Transaction,
    atransaction,
    get_transaction,
    transaction,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def events() -> Iterator[list[str]]:
    txn_tasks.EVENTS.clear()
    yield txn_tasks.EVENTS
    txn_tasks.EVENTS.clear()


def records(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and ".transactions" not in p.parts
    }


# -- the transaction object ---------------------------------------------------------------------
def test_get_transaction_is_the_innermost_and_none_outside() -> None:
    assert get_transaction() is None
    with transaction() as outer:
        assert get_transaction() is outer
        with transaction() as inner:
            assert get_transaction() is inner
            assert inner.get_parent() is outer
        assert get_transaction() is outer
    assert get_transaction() is None


def test_get_transaction_is_reset_after_an_error() -> None:
    with pytest.raises(ZeroDivisionError), transaction():
        1 / 0  # noqa: B018  # the error under test
    assert get_transaction() is None


def test_values_are_copies_inherited_by_children() -> None:
    with transaction() as parent:
        parent.set("items", [1, 2])
        value = parent.get("items")
        value.append(3)
        assert parent.get("items") == [1, 2]
        with transaction() as child:
            assert child.get("items") == [1, 2]
            child.set("items", ["child"])
            assert child.get("items") == ["child"]
            assert child.get("missing", "default") == "default"
        assert parent.get("items") == [1, 2]
        with pytest.raises(ValueError, match="Could not retrieve value for unknown key: nope"):
            parent.get("nope")


def test_commit_modes_and_isolation_levels_are_inherited() -> None:
    with transaction() as top:
        assert top.commit_mode is CommitMode.LAZY
        assert top.isolation_level is IsolationLevel.READ_COMMITTED
    with transaction(commit_mode=CommitMode.EAGER) as eager:
        with transaction() as child:
            assert child.commit_mode is CommitMode.EAGER
        assert child.is_committed() and eager.is_active()


def test_lazy_children_commit_when_the_outermost_exits() -> None:
    seen: list[str] = []
    with transaction() as outer:
        with transaction() as inner:
            inner.stage("value", on_commit_hooks=[lambda txn: seen.append("inner")])
        assert inner.is_staged() and not seen
        outer.stage("outer", on_commit_hooks=[lambda txn: seen.append("outer")])
    assert seen == ["inner", "outer"]
    assert outer.is_committed() and inner.is_committed()


def test_off_rolls_back_unless_committed() -> None:
    seen: list[str] = []
    with transaction(commit_mode=CommitMode.OFF) as txn:
        txn.stage(1, on_rollback_hooks=[lambda t: seen.append("rolled back")])
    assert txn.is_rolled_back() and seen == ["rolled back"]
    with transaction(commit_mode=CommitMode.OFF) as txn:
        txn.stage(1, on_rollback_hooks=[lambda t: seen.append("again")])
        assert txn.commit()
    assert txn.is_committed() and seen == ["rolled back"]


def test_a_nested_rollback_rolls_back_every_ancestor() -> None:
    seen: list[str] = []
    with transaction() as a:
        a.stage("a", on_rollback_hooks=[lambda t: seen.append("a")])
        with transaction() as b:
            b.stage("b", on_rollback_hooks=[lambda t: seen.append("b")])
            with transaction() as c:
                c.stage("c", on_rollback_hooks=[lambda t: seen.append("c")])
                c.rollback()
    assert a.is_rolled_back() and b.is_rolled_back() and c.is_rolled_back()
    assert seen == ["c", "b", "a"]


def test_records_idempotency_and_overwrite(tmp_path: Path) -> None:
    store = ResultStore(result_storage=tmp_path)
    runs: list[int] = []

    def job(overwrite: bool = False) -> Any:
        with transaction(key="daily", store=store, overwrite=overwrite) as txn:
            if txn.is_committed():
                return txn.read().result
            runs.append(1)
            txn.stage({"rows": len(runs)})
        return None

    assert job() is None
    assert job() == {"rows": 1}  # committed: the work is skipped
    assert runs == [1]
    assert job(overwrite=True) is None
    assert store.read("daily").result == {"rows": 2}
    assert records(tmp_path) == {"daily"}


def test_no_record_appears_on_rollback(tmp_path: Path) -> None:
    store = ResultStore(result_storage=tmp_path)
    with pytest.raises(RuntimeError), transaction(key="k", store=store) as txn:
        txn.stage("value")
        raise RuntimeError("stop")
    assert txn.is_rolled_back() and not store.exists("k")
    with transaction(key="k", store=store, write_on_commit=False) as txn:
        txn.stage("value")
    assert txn.is_committed() and not store.exists("k")


def test_serializable_needs_a_lock_manager(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigurationError, match="Isolation level SERIALIZABLE is not supported"),
        transaction(
            key="k",
            store=ResultStore(result_storage=tmp_path),
            isolation_level=IsolationLevel.SERIALIZABLE,
        ),
    ):
        pass
    assert get_transaction() is None


def test_serializable_second_writer_waits_and_sees_the_first(tmp_path: Path) -> None:
    store = ResultStore(result_storage=tmp_path, lock_manager=MemoryLockManager())
    first_in = threading.Event()
    second_waiting = threading.Event()
    seen: dict[str, Any] = {}

    def first() -> None:
        with transaction(key="k", store=store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            first_in.set()
            assert second_waiting.wait(5)
            txn.stage("first")

    def second() -> None:
        assert first_in.wait(5)
        assert store.is_locked("k")
        second_waiting.set()
        with transaction(key="k", store=store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
            seen["committed"] = txn.is_committed()
            txn.stage("second")  # ignored: the key is committed
        seen["record"] = store.read("k").result

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"committed": True, "record": "first"}
    assert not store.is_locked("k")


def test_memory_lock_manager() -> None:
    manager = MemoryLockManager()
    assert manager is MemoryLockManager()  # one per process, as in Prefect
    assert manager.acquire_lock("key", "a")
    assert manager.is_lock_holder("key", "a") and not manager.is_lock_holder("key", "b")
    assert not manager.acquire_lock("key", "b", acquire_timeout=0.01)
    with pytest.raises(ValueError, match="No lock held by b for transaction with key key"):
        manager.release_lock("key", "b")
    manager.release_lock("key", "a")
    assert not manager.is_locked("key")
    assert manager.wait_for_lock("key", timeout=0)


def test_a_raising_hook_is_reported_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    def broken(txn: Transaction) -> None:
        raise RuntimeError("hook broke")

    with caplog.at_level(logging.INFO, logger="actorflow.transactions"), transaction() as txn:
        txn.stage(1, on_commit_hooks=[broken])
    assert txn.is_rolled_back()  # a failed commit rolls back, as in Prefect
    assert "An error was encountered while running commit hook 'broken'" in caplog.text
    assert "hook broke" in caplog.text


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="commit_mode must be a CommitMode"):
        Transaction(commit_mode="LAZY")  # type: ignore[arg-type]  # the error under test
    with pytest.raises(RuntimeError, match="Context already entered"), transaction() as txn:
        txn.__enter__()


@pytest.mark.anyio
async def test_atransaction(anyio_backend: str, tmp_path: Path) -> None:
    seen: list[str] = []

    async def on_commit(txn: Transaction) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(txn.get("who"))

    store = ResultStore(result_storage=tmp_path, lock_manager=MemoryLockManager())
    async with atransaction(
        key="async", store=store, isolation_level=IsolationLevel.SERIALIZABLE
    ) as txn:
        assert get_transaction() is txn
        txn.set("who", anyio_backend)
        txn.stage(42, on_commit_hooks=[on_commit])
    assert seen == [anyio_backend] and store.read("async").result == 42
    async with atransaction(key="async", store=store) as again:
        assert again.is_committed()
    with pytest.raises(KeyError):
        async with atransaction() as failing:
            failing.stage(1, on_rollback_hooks=[on_commit])
            failing.set("who", "rolled back")
            raise KeyError("x")
    assert seen == [anyio_backend, "rolled back"]
    assert get_transaction() is None


# -- task runs in transactions ------------------------------------------------------------------
def _pipeline(tmp_path: Path) -> tuple[Any, list[str], Path]:
    seen: list[str] = []
    side = tmp_path / "side-effect.txt"

    @task
    def write_file(contents: str) -> None:
        get_transaction().set("path", str(side))  # type: ignore[union-attr]  # in a txn
        side.write_text(contents)

    @write_file.on_rollback
    def delete_file(txn: Transaction) -> None:
        seen.append("rollback write_file")
        os.unlink(txn.get("path"))

    @write_file.on_commit
    def committed(txn: Transaction) -> None:
        seen.append("commit write_file")

    @task
    def quality_test() -> None:
        if len(side.read_text().splitlines()) < 2:
            raise ValueError("Not enough data!")

    @quality_test.on_rollback
    def never(txn: Transaction) -> None:
        seen.append("rollback quality_test")

    @flow
    def pipeline(contents: str) -> None:
        with transaction():
            write_file(contents)
            quality_test()

    return pipeline, seen, side


def test_a_failed_task_rolls_back_the_ones_before_it(tmp_path: Path) -> None:
    pipeline, seen, side = _pipeline(tmp_path)
    with pytest.raises(ValueError, match="Not enough data!"):
        pipeline("hello world")
    assert not side.exists()
    assert seen == ["rollback write_file"]  # not the failed task's own hook
    seen.clear()
    pipeline("hello\nworld\n")
    assert side.exists() and seen == ["commit write_file"]


def test_records_appear_only_at_commit(tmp_path: Path) -> None:
    storage = tmp_path / "records"
    seen: list[set[str]] = []

    @task(persist_result=True, result_storage=str(storage), cache_policy=INPUTS)
    def step(x: int) -> int:
        return x + 1

    @flow
    def ok() -> None:
        with transaction():
            step(1)
            step(2)
            seen.append(records(storage))  # staged, not written
        seen.append(records(storage))

    @flow
    def failing() -> None:
        with transaction():
            step(3)
            raise RuntimeError("stop")

    ok()
    assert seen[0] == set() and len(seen[1]) == 2
    with pytest.raises(RuntimeError):
        failing()
    assert len(records(storage)) == 2  # nothing of the rolled back run


def test_a_flow_error_rolls_back_every_completed_run_newest_first() -> None:
    seen: list[str] = []

    @task
    def step(name: str) -> str:
        get_transaction().set("name", name)  # type: ignore[union-attr]  # in a txn
        return name

    @step.on_rollback
    def undo(txn: Transaction) -> None:
        seen.append(f"undo {txn.get('name')}")

    @step.on_commit
    def done(txn: Transaction) -> None:
        seen.append(f"commit {txn.get('name')}")

    @task
    def boom() -> None:
        raise ValueError("boom")

    @boom.on_rollback
    def boom_undo(txn: Transaction) -> None:
        seen.append("undo boom")

    @flow
    def failing() -> None:
        step("a")
        step("b")
        boom()

    @flow
    def fine() -> None:
        step("c")
        assert seen == []  # commit hooks wait for the flow
        step("d")

    with pytest.raises(ValueError, match="boom"):
        failing()
    assert seen == ["undo b", "undo a"]
    seen.clear()
    fine()
    assert seen == ["commit c", "commit d"]


def test_async_hooks_are_awaited_also_on_sync_tasks() -> None:
    seen: list[str] = []

    @task
    def step() -> int:
        return 1

    @step.on_commit
    async def committed(txn: Transaction) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append("async commit")

    @flow
    def pipeline() -> int:
        with transaction():
            return step()

    assert pipeline() == 1
    assert seen == ["async commit"]
    step()  # outside a flow: its own transaction commits at once
    assert seen == ["async commit", "async commit"]


def test_submitted_and_mapped_runs_belong_to_the_transaction(events: list[str]) -> None:
    @flow(task_runner=ThreadPoolTaskRunner(max_workers=3))
    def mapped() -> None:
        with transaction():
            txn_tasks.produce.map([1, 2, 3])  # not waited for here: the transaction waits
            txn_tasks.produce.submit(4)
        assert sorted(events) == [f"commit produce-{i}" for i in (1, 2, 3, 4)]
        with transaction():
            futures = txn_tasks.produce.map([5, 6, 7])
            futures.wait()
            txn_tasks.explode.submit(0)

    mapped()
    commits, rollbacks = events[:4], events[4:]
    assert len(commits) == 4
    assert sorted(rollbacks) == [f"rollback produce-{i}" for i in (5, 6, 7)]


@pytest.mark.parametrize("kind", ["processes", "dask"])
def test_remote_runners_stage_with_the_supervisor(
    kind: str, events: list[str], request: pytest.FixtureRequest
) -> None:
    runner = make_runner(kind, request)

    @flow(task_runner=runner)
    def remote() -> list[int]:
        with transaction():
            values = txn_tasks.produce.map([1, 2]).result()
        try:
            with transaction():
                txn_tasks.produce.submit(3).result()
                txn_tasks.explode.submit(0).result()
        except ValueError:
            pass
        return values

    assert remote() == [10, 20]
    assert sorted(events[:2]) == ["commit produce-1", "commit produce-2"]
    assert events[2:] == ["rollback produce-3"]


@pytest.mark.anyio
async def test_async_flow_with_submitted_async_runs(anyio_backend: str) -> None:
    seen: list[str] = []
    gate = anyio.Event()

    @task
    async def step(x: int) -> int:
        await gate.wait()
        get_transaction().set("x", x)  # type: ignore[union-attr]  # in a txn
        return x

    @step.on_rollback
    async def undo(txn: Transaction) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"undo {txn.get('x')}")

    @flow
    async def pipeline() -> None:
        async with atransaction():
            step.submit(1)
            step.submit(2)
            gate.set()  # the runs finish only after the body: the transaction waits
            raise RuntimeError("validation failed")

    with pytest.raises(RuntimeError, match="validation failed"):
        await pipeline()
    assert sorted(seen) == ["undo 1", "undo 2"]


def test_serializable_task_policy_computes_once_across_threads(tmp_path: Path) -> None:
    calls: list[int] = []
    started = threading.Barrier(2)

    policy = INPUTS.configure(
        key_storage=str(tmp_path),
        lock_manager=MemoryLockManager(),
        isolation_level=IsolationLevel.SERIALIZABLE,
    )

    @task(cache_policy=policy)
    def expensive(x: int) -> int:
        calls.append(x)
        return x * 2

    @flow
    def one() -> int:
        started.wait(5)
        with transaction():
            return expensive(21)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(one())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [42, 42]
    assert calls == [21]


def test_serializable_policy_without_lock_manager_fails_the_run(tmp_path: Path) -> None:
    policy = INPUTS.configure(
        key_storage=str(tmp_path), isolation_level=IsolationLevel.SERIALIZABLE
    )

    @task(cache_policy=policy)
    def step(x: int) -> int:
        return x

    state = step(1, return_state=True)
    assert state.is_failed()
    with pytest.raises(ConfigurationError, match="Isolation level SERIALIZABLE"):
        state.result()


# -- across processes ---------------------------------------------------------------------------
def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


KILLED = """
import os, sys
from actorflow.results import ResultStore
from actorflow.transactions import transaction
from actorflow._transactions import _atomic

folder, steps = sys.argv[1], int(sys.argv[2])
done = []

def step(name):
    done.append(name)
    if len(done) == steps:
        os._exit(9)  # killed in the middle of the commit

_atomic.after_step = step
store = ResultStore(result_storage=folder)
with transaction():
    for name in ("a", "b", "c"):
        with transaction(key=name, store=store) as txn:
            txn.stage(name)
"""


@pytest.mark.parametrize(("steps", "expected"), [(1, {"a", "b", "c"}), (2, {"a", "b", "c"})])
def test_a_commit_killed_midway_is_finished_on_open(
    tmp_path: Path, steps: int, expected: set[str]
) -> None:
    proc = _python(KILLED, str(tmp_path), str(steps))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err
    present = records(tmp_path)
    assert len(present) < 3  # partly moved into place when it died
    from actorflow.results import LocalStorage

    storage = LocalStorage(tmp_path)  # opened anew (as the cache opens it): recovers
    store = ResultStore(result_storage=storage)
    assert store.exists("a")
    assert records(tmp_path) == expected
    assert {store.read(k).result for k in expected} == expected
    assert not any((tmp_path / ".transactions").iterdir())


def test_a_commit_killed_before_its_commit_point_leaves_nothing(tmp_path: Path) -> None:
    code = KILLED.replace("_atomic.after_step = step", "_atomic.os.rename = lambda *a: os._exit(9)")
    proc = _python(code, str(tmp_path), "1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err
    store = ResultStore(result_storage=str(tmp_path / "."))
    assert not store.exists("a")
    assert records(tmp_path) == set()
    assert not any((tmp_path / ".transactions").iterdir())


SERIAL = """
import sys, time
from pathlib import Path
from actorflow.locking.memory import MemoryLockManager
from actorflow.results import ResultStore
from actorflow.transactions import IsolationLevel, transaction

folder, signals, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
store = ResultStore(result_storage=str(folder), lock_manager=MemoryLockManager())

def wait_for(signal):
    while not (signals / signal).exists():
        time.sleep(0.005)

if name == "second":
    wait_for("first-holds")
    assert store.storage.try_lock("shared") is None  # the first process holds the key
    (signals / "second-waits").touch()
with transaction(key="shared", store=store, isolation_level=IsolationLevel.SERIALIZABLE) as txn:
    if name == "first":
        (signals / "first-holds").touch()
        wait_for("second-waits")
    if txn.is_committed():
        print("read", txn.read().result)
    else:
        with open(signals / "computed", "a") as f:
            f.write(name + "\\n")
        txn.stage(name)
        print("computed", name)
"""


def test_serializable_across_processes_computes_once(tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()
    folder = tmp_path / "records"
    first = _python(SERIAL, str(folder), str(signals), "first")
    second = _python(SERIAL, str(folder), str(signals), "second")
    out1, err1 = first.communicate(timeout=60)
    out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert out1.strip() == "computed first"
    assert out2.strip() == "read first"
    assert (signals / "computed").read_text() == "first\n"


def test_a_task_body_always_has_a_transaction() -> None:
    @task
    def body() -> bool:
        txn = get_transaction()
        assert txn is not None and txn.get_parent() is None
        txn.set("seen", True)
        return bool(txn.get("seen"))

    assert body()

    @flow
    def in_flow() -> bool:
        assert get_transaction() is None  # a flow body outside any transaction
        return body()

    assert in_flow()


def test_transactions_and_the_cache_share_records(tmp_path: Path) -> None:
    calls: list[int] = []

    def key(context: Any, parameters: dict[str, Any]) -> str:
        return f"shared-{parameters['x']}"

    @task(cache_key_fn=key, result_storage=str(tmp_path))
    def compute(x: int) -> int:
        calls.append(x)
        return x * 3

    store = ResultStore(result_storage=str(tmp_path))
    assert compute(1) == 3
    with transaction(key="shared-1", store=store) as txn:
        assert txn.is_committed()  # the task's record: not run again
        assert txn.read().result == 3  # type: ignore[union-attr]  # committed: a record
    with transaction(key="shared-2", store=store) as txn:
        txn.stage(99)
    assert compute(2, return_state=True).name == "Cached"  # type: ignore[call-arg]  # option
    assert compute(2) == 99 and calls == [1]


def test_a_raising_task_hook_names_the_hook_and_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @task
    def step() -> int:
        return 1

    @step.on_rollback
    def clean_up(txn: Transaction) -> None:
        raise OSError("disk gone")

    @flow
    def failing() -> None:
        with transaction():
            step()
            raise RuntimeError("stop")

    with caplog.at_level(logging.INFO, logger="actorflow.transactions"):
        with pytest.raises(RuntimeError, match="stop"):
            failing()
    assert (
        "An error was encountered while running rollback hook 'clean_up' of task 'step'"
        in caplog.text
    )
    assert "disk gone" in caplog.text


def test_a_caught_task_failure_still_rolls_back_the_transaction() -> None:
    seen: list[str] = []

    @task
    def first() -> None:
        pass

    @first.on_rollback
    def undo(txn: Transaction) -> None:
        seen.append("undo first")

    @flow
    def pipeline() -> bool:
        with transaction() as txn:
            first()
            try:
                txn_tasks.explode(1)
            except ValueError:
                pass
        return txn.is_rolled_back()

    assert pipeline() is True
    assert seen == ["undo first"]


@pytest.mark.anyio
async def test_an_async_flow_error_rolls_back_its_mapped_runs(anyio_backend: str) -> None:
    seen: list[str] = []

    @task
    async def load(x: int) -> int:
        get_transaction().set("x", x)  # type: ignore[union-attr]  # in a txn
        return x

    @load.on_rollback
    async def unload(txn: Transaction) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"unload {txn.get('x')}")

    @load.on_commit
    def loaded(txn: Transaction) -> None:
        seen.append(f"loaded {txn.get('x')}")

    @flow
    async def failing() -> None:
        for future in load.map([1, 2, 3]):
            await future
        raise RuntimeError("flow failed")

    @flow
    async def fine() -> list[int]:
        return [await future for future in load.map([4, 5])]

    with pytest.raises(RuntimeError, match="flow failed"):
        await failing()
    assert sorted(seen) == ["unload 1", "unload 2", "unload 3"]
    seen.clear()
    assert await fine() == [4, 5]
    assert sorted(seen) == ["loaded 4", "loaded 5"]


def test_a_serializable_key_is_released_whatever_the_end(tmp_path: Path) -> None:
    store = ResultStore(result_storage=tmp_path, lock_manager=MemoryLockManager())
    serial = IsolationLevel.SERIALIZABLE
    with transaction(key="k", store=store, isolation_level=serial) as txn:
        txn.stage(1)
    with pytest.raises(RuntimeError), transaction(key="k", store=store, isolation_level=serial):
        assert store.is_locked("k")
        raise RuntimeError("after finding the key committed")
    assert not store.is_locked("k")
    with pytest.raises(RuntimeError), transaction(key="j", store=store, isolation_level=serial):
        raise RuntimeError("before staging")
    assert not store.is_locked("j") and not store.exists("j")


@pytest.mark.anyio
async def test_serializable_async_task_in_atransaction(anyio_backend: str, tmp_path: Path) -> None:
    calls: list[int] = []
    policy = INPUTS.configure(
        key_storage=str(tmp_path),
        lock_manager=MemoryLockManager(),
        isolation_level=IsolationLevel.SERIALIZABLE,
    )

    @task(cache_policy=policy)
    async def expensive(x: int) -> int:
        calls.append(x)
        return x + 1

    @flow
    async def pipeline() -> list[int]:
        async with atransaction() as txn:
            first = await expensive(1)
            assert records(tmp_path) == set()  # staged until the transaction commits
            assert txn.is_active()
        return [first, await expensive(1)]

    assert await pipeline() == [2, 2]
    assert calls == [1] and len(records(tmp_path)) == 1
    assert not MemoryLockManager().is_locked(next(iter(records(tmp_path))))


def test_a_reader_waits_for_a_serializable_writer(tmp_path: Path) -> None:
    store = ResultStore(result_storage=tmp_path, lock_manager=MemoryLockManager())
    writer_in = threading.Event()
    reader_waits = threading.Event()

    def writer() -> None:
        with transaction(
            key="report", store=store, isolation_level=IsolationLevel.SERIALIZABLE
        ) as txn:
            writer_in.set()
            assert reader_waits.wait(5)
            txn.stage({"rows": 3})

    thread = threading.Thread(target=writer)
    thread.start()
    assert writer_in.wait(5)
    with transaction(key="report", store=store, write_on_commit=False) as txn:
        reader_waits.set()  # the writer may now commit; the read below waits for it
        record = txn.read()
    thread.join(5)
    assert record is not None and record.result == {"rows": 3}


@pytest.mark.anyio
async def test_a_transaction_inside_a_task_body(anyio_backend: str, tmp_path: Path) -> None:
    @task(result_storage=str(tmp_path))
    async def keeps() -> Any:
        with transaction(key="inside-task", commit_mode=CommitMode.EAGER) as txn:
            txn.stage({"foo": "bar"})
        assert txn.is_committed()
        assert txn.get_parent() is get_transaction()  # the run's own
        record = txn.read()
        return record.result  # type: ignore[union-attr]  # committed: a record

    assert await keeps() == {"foo": "bar"}
    assert "inside-task" in records(tmp_path)  # in the task's result storage


def test_a_run_completing_after_its_transaction_rolled_back_rolls_back() -> None:
    seen: list[str] = []
    rolled_back = threading.Event()

    @task
    def slow() -> int:
        assert rolled_back.wait(5)  # finishes only once a sibling's failure rolled back
        return 1

    @slow.on_rollback
    def undo(txn: Transaction) -> None:
        seen.append("undo slow")

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
    def pipeline() -> bool:
        with transaction() as txn:
            txn.stage(None, on_rollback_hooks=[lambda t: rolled_back.set()])
            slow.submit()
            txn_tasks.explode.submit(1)
        return txn.is_rolled_back()

    assert pipeline() is True
    assert seen == ["undo slow"]


@pytest.mark.anyio
async def test_a_sync_transaction_in_an_async_flow(anyio_backend: str) -> None:
    seen: list[str] = []

    @task
    async def step(x: int) -> int:
        return x

    @step.on_commit
    async def done(txn: Transaction) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append("committed")

    @flow
    async def pipeline() -> None:
        with transaction():  # a sync transaction: its waits and hooks suspend the body
            step.submit(1)
            await step(2)

    await pipeline()
    assert seen == ["committed", "committed"]


def test_a_record_that_cannot_be_stored_fails_the_commit_before_any_is_written(
    tmp_path: Path,
) -> None:
    store = ResultStore(result_storage=tmp_path)
    with transaction() as outer:
        for key in ("first", "second"):
            with transaction(key=key, store=store) as txn:
                txn.stage(key)
        (tmp_path / "second").mkdir()  # made a folder meanwhile: no record can be there
    assert outer.is_rolled_back()
    assert records(tmp_path) == set()


@pytest.mark.parametrize("console_level", [logging.DEBUG, logging.INFO])
def test_the_journal_records_commits_and_rollbacks_with_their_runs(console_level: int) -> None:
    # Whatever the console shows (commits are DEBUG lines there), the journal has them.
    from actorflow import journal

    @task
    def step(x: int) -> int:
        return x

    @step.on_rollback
    def undo(txn: Transaction) -> None:
        pass

    @flow
    def pipeline() -> None:
        with transaction():
            step(1)
        with transaction():
            step(2)
            raise RuntimeError("stop")

    j = journal.enable(":memory:")
    task_logger = logging.getLogger("actorflow.task_runs")
    level = task_logger.level
    task_logger.setLevel(console_level)
    try:
        with pytest.raises(RuntimeError):
            pipeline()
        runs = {r.name: r for r in j.runs(kind="task")}
        lines = {name: [line.message for line in j.run(run.id).logs] for name, run in runs.items()}
    finally:
        task_logger.setLevel(level)
        journal.disable()
    (committed,) = [name for name, text in lines.items() if "Transaction committed" in text]
    (rolled_back,) = [name for name, text in lines.items() if "Transaction rolled back" in text]
    assert committed != rolled_back
    assert "Running rollback hook 'undo' of task 'step'" in lines[rolled_back]


_HOOKS_IN_A_FRESH_PROCESS = """
import sys
from actorflow import flow, task

committed = []

@task
def plain(x):
    return x

@task
def hooked(x):
    return x

@hooked.on_commit
def remember(txn):
    committed.append(txn.key)

@flow
def my_flow():
    plain(0)
    loaded_by_plain = "actorflow._transactions._transaction" in sys.modules
    return loaded_by_plain, hooked.submit(1).result(), hooked(2)

loaded_by_plain, submitted, called = my_flow()
assert not loaded_by_plain, "a task without hooks loaded transactions"
assert (submitted, called) == (1, 2)
assert len(committed) == 2, committed
print("ok")
"""


def test_commit_hooks_run_in_a_process_that_never_opened_a_transaction() -> None:
    # Until a transaction is opened, only a task that needs one (hooks, an isolation level) is
    # given one: the task decides that once, not each run.
    out = subprocess.run(
        [sys.executable, "-c", _HOOKS_IN_A_FRESH_PROCESS],
        capture_output=True,
        text=True,
        env={**os.environ, "ACTORFLOW_JOURNAL": "off"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == "ok"
