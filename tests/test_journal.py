"""The run journal: exact transition sequences, logs, queries, pruning, subscriptions."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import actorflow
from actorflow import flow, get_run_logger, journal, task
from actorflow.journal import Journal, RunRecord
from actorflow.runs import TransitionEvent
from actorflow.testing import VirtualClock, use_clock


@pytest.fixture
def mem() -> Iterator[Journal]:
    j = journal.enable(":memory:")
    try:
        yield j
    finally:
        journal.disable()


def states(record: RunRecord) -> list[str]:
    return [t.state_name for t in record.transitions]


def only_flow(j: Journal) -> RunRecord:
    (summary,) = j.flow_runs()
    return summary.run


def task_runs(j: Journal, name: str | None = None) -> list[RunRecord]:
    return j.runs(flow_run_id=only_flow(j).id, kind="task", name=name, history=True)


def test_a_successful_flow_and_its_task_runs(mem: Journal) -> None:
    @task(tags=["t1"])
    def double(x: int) -> int:
        return 2 * x

    @flow(flow_run_name="my-run")
    def my_flow(n: int) -> list[int]:
        return double.map(range(n)).result()

    assert my_flow(3) == [0, 2, 4]
    run = only_flow(mem)
    assert (run.name, run.spec_name, run.kind, run.state_name) == (
        "my-run",
        "my-flow",
        "flow",
        "Completed",
    )
    assert run.parameters == {"n": "3"} and run.finished and run.process_alive
    assert states(mem.run(run.id)) == ["Pending", "Running", "Completed"]
    children = task_runs(mem)
    assert [states(c) for c in children] == [["Pending", "Running", "Completed"]] * 3
    assert sorted(c.parameters["x"] for c in children) == ["0", "1", "2"]
    for child in children:
        assert child.flow_run_id == run.id == child.parent_id
        assert child.tags == ("t1",) and child.task_key == double.task_key
        assert child.run_count == 1 and child.start_ns is not None and child.end_ns is not None
    assert mem.flow_runs()[0].task_runs == {"Completed": 3}


def test_retries_with_a_delay_are_recorded_in_order(mem: Journal) -> None:
    attempts: list[int] = []

    @task(retries=2, retry_delay_seconds=5)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError(f"attempt {len(attempts)} failed")
        return "ok"

    @flow
    def my_flow() -> str:
        return flaky()

    with use_clock(VirtualClock()):
        assert my_flow() == "ok"
    (run,) = task_runs(mem)
    assert states(run) == [
        "Pending", "Running", "AwaitingRetry", "Retrying", "AwaitingRetry", "Retrying",
        "Completed",
    ]  # fmt: skip
    assert run.run_count == 3


def test_a_failure_keeps_its_traceback(mem: Journal) -> None:
    @task
    def broken() -> None:
        raise RuntimeError("out of cheese")

    @flow
    def my_flow() -> None:
        broken()

    with pytest.raises(RuntimeError):
        my_flow()
    (run,) = task_runs(mem)
    assert states(run) == ["Pending", "Running", "Failed"]
    failed = run.transitions[-1]
    assert failed.traceback is not None and "RuntimeError: out of cheese" in failed.traceback
    assert "def broken" not in failed.traceback and "raise RuntimeError" in failed.traceback
    flow_run = mem.run(only_flow(mem).id)
    assert states(flow_run) == ["Pending", "Running", "Failed"]
    assert any("out of cheese" in line.message for line in flow_run.logs)


@pytest.mark.anyio
async def test_a_timeout(mem: Journal, anyio_backend: str) -> None:
    @task(timeout_seconds=0.05)
    async def stuck() -> None:
        await anyio.sleep_forever()

    @flow
    async def my_flow() -> str:
        state = await stuck(return_state=True)
        return str(state.name)

    assert await my_flow() == "TimedOut"
    (run,) = task_runs(mem)
    assert states(run) == ["Pending", "Running", "TimedOut"]
    assert run.state_type == "FAILED" and "0.05" in (run.transitions[-1].message or "")


def test_a_cached_run(mem: Journal) -> None:
    @task(persist_result=True)
    def add_one(x: int) -> int:
        return x + 1

    @flow
    def my_flow() -> None:
        add_one(1)
        add_one(1)

    my_flow()
    first, second = task_runs(mem)
    assert states(first) == ["Pending", "Running", "Completed"]
    assert states(second) == ["Pending", "Running", "Cached"]
    assert second.run_count == 0 and second.state_type == "COMPLETED"
    assert [r.id for r in mem.runs(state="Cached")] == [second.id]
    assert len(mem.runs(state="COMPLETED")) == 3  # the flow run too


def test_a_failed_upstream_leaves_its_downstream_not_ready(mem: Journal) -> None:
    @task
    def broken() -> int:
        raise ValueError("no")

    @task
    def after(x: int) -> int:
        return x

    @flow
    def my_flow() -> Any:
        up = broken.submit()
        return after.submit(up).wait()

    my_flow()
    (down,) = task_runs(mem, name="after")
    (up,) = task_runs(mem, name="broken")
    assert states(down) == ["Pending", "NotReady"]
    assert down.upstream == (up.id,) and down.finished and down.run_count == 0
    assert mem.flow_runs()[0].task_runs == {"Failed": 1, "NotReady": 1}


@pytest.mark.anyio
async def test_a_cancelled_run(mem: Journal, anyio_backend: str) -> None:
    started = anyio.Event()

    @task
    async def forever() -> None:
        started.set()
        await anyio.sleep_forever()

    @flow
    async def my_flow() -> None:
        future = forever.submit()
        await started.wait()
        future.cancel()
        await future.wait_async()

    await my_flow()
    (run,) = task_runs(mem)
    assert states(run) == ["Pending", "Running", "Cancelled"]
    assert run.transitions[-1].message == "cancelled through its future"
    assert [r.id for r in mem.runs(state="CANCELLED")] == [run.id]


@pytest.mark.anyio
async def test_a_run_in_flight_at_a_flush_is_written_as_it_stands_then_at_its_end(
    mem: Journal, anyio_backend: str
) -> None:
    started = anyio.Event()
    release = anyio.Event()

    @task
    async def slow(x: int) -> int:
        started.set()
        await release.wait()
        return x

    @flow
    async def my_flow() -> tuple[RunRecord, RunRecord, int, int]:
        future = slow.submit(7)
        await started.wait()
        mem.flush()
        (during,) = task_runs(mem)
        flow_during = only_flow(mem)
        batches = mem.statistics().batches
        mem.flush()  # nothing moved since: nothing is written
        unchanged = mem.statistics().batches - batches
        release.set()
        await future.wait_async()
        return during, flow_during, unchanged, mem.statistics().unfinished_runs

    during, flow_during, unchanged, unfinished = await my_flow()
    assert states(during) == ["Pending", "Running"] and during.state_name == "Running"
    assert during.end_ns is None and during.start_ns is not None and not during.finished
    assert during.parameters == {"x": "7"} and during.run_count == 1
    assert flow_during.state_name == "Running" and flow_during.end_ns is None
    assert unchanged == 0 and unfinished == 2
    mem.flush()
    (after,) = task_runs(mem)
    assert states(after) == ["Pending", "Running", "Completed"] and after.finished
    assert after.start_ns == during.start_ns and after.created_ns == during.created_ns
    assert only_flow(mem).state_name == "Completed"
    assert mem.statistics().unfinished_runs == 0


def test_a_run_that_moves_on_from_not_ready_is_written_again(mem: Journal) -> None:
    from actorflow._core._states import COMPLETED, RUNNING

    @task
    def broken() -> int:
        raise ValueError("no")

    @task
    def after(x: int) -> int:
        return x

    @flow
    def my_flow() -> Any:
        down = after.submit(broken.submit())
        down.wait()
        return down.task_run

    run = my_flow()
    mem.flush()
    (down,) = task_runs(mem, name="after")
    assert states(down) == ["Pending", "NotReady"] and down.finished
    assert mem.statistics().unfinished_runs == 0  # the writer stopped reading it
    run.transition(RUNNING)  # NotReady is not final: a run may leave it
    mem.flush()
    (moved,) = task_runs(mem, name="after")
    assert states(moved) == ["Pending", "NotReady", "Running"]
    assert moved.end_ns is None and moved.start_ns is not None
    assert mem.statistics().unfinished_runs == 1
    run.transition(COMPLETED)
    mem.flush()
    (ended,) = task_runs(mem, name="after")
    assert states(ended) == ["Pending", "NotReady", "Running", "Completed"] and ended.finished
    assert mem.statistics().unfinished_runs == 0


def test_runs_outside_the_with_block_and_on_other_threads_are_journaled(mem: Journal) -> None:
    @task
    def hello() -> str:
        return "hi"

    @flow
    def served() -> str:
        return hello()

    # As a web service's handlers would: on threads of their own, no block around them.
    threads = [threading.Thread(target=served) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mem.flow_runs()) == 3
    assert len(mem.runs(kind="task", state="Completed")) == 3


def test_logs_and_prints_are_stored_with_their_run(mem: Journal) -> None:
    @task(log_prints=True)
    def chatty() -> None:
        print("printed in the task")
        get_run_logger().warning("careful")

    @flow
    def my_flow() -> None:
        get_run_logger().info("in the flow")
        chatty()

    my_flow()
    (run,) = task_runs(mem)
    lines = [(r.level, r.message) for r in mem.run(run.id).logs]
    assert ("INFO", "printed in the task") in lines and ("WARNING", "careful") in lines
    flow_lines = [r.message for r in mem.run(only_flow(mem).id).logs]
    assert "in the flow" in flow_lines and "careful" not in flow_lines


def test_queries_by_state_name_and_time(mem: Journal) -> None:
    @task
    def ok() -> int:
        return 1

    @task
    def bad() -> int:
        raise ValueError("bad")

    @flow
    def my_flow() -> None:
        ok.submit().wait()
        bad.submit().wait()

    before = time.time()
    my_flow()
    assert [r.spec_name for r in mem.runs(state="FAILED")] == ["bad"]
    assert [r.spec_name for r in mem.runs(name="ok")] == ["ok"]
    assert len(mem.runs(since=before)) == 3 and mem.runs(until=before) == []
    assert len(mem.runs(limit=1)) == 1
    with pytest.raises(ValueError, match="kind must be"):
        mem.runs(kind="job")
    with pytest.raises(KeyError, match="no run with id"):
        mem.run("0" * 32)
    with pytest.raises(ValueError, match="is not a run id"):
        mem.run("nope")


def test_pruning_by_count_and_age(mem: Journal) -> None:
    @task
    def one() -> int:
        return 1

    @flow
    def my_flow() -> None:
        one()

    for _ in range(3):
        my_flow()
    assert len(mem.flow_runs()) == 3
    assert mem.prune(keep=1) == 4  # two flow runs, each with its task run
    (left,) = mem.flow_runs()
    assert left.task_runs == {"Completed": 1}
    assert mem.prune(older_than=3600) == 0
    assert mem.prune(older_than=0) == 2
    assert mem.flow_runs() == [] and mem.runs() == []
    with pytest.raises(ValueError, match="needs older_than"):
        mem.prune()


def test_subscribe_hears_every_failure_in_the_process() -> None:
    heard: list[TransitionEvent] = []

    @task
    def bad() -> None:
        raise ValueError("bad")

    @flow
    def my_flow() -> None:
        bad.submit().wait()

    with journal.subscribe(heard.append, states=["FAILED"]):
        elsewhere = threading.Thread(target=my_flow)
        elsewhere.start()
        elsewhere.join()
    assert [(e.run_kind, e.state.name, e.from_state) for e in heard] == [
        ("task", "Failed", "Running")
    ]
    my_flow()  # after cancel(): not heard
    assert len(heard) == 1
    with pytest.raises(TypeError, match="callable"):
        journal.subscribe(42)  # type: ignore[arg-type]  # what is checked


def test_enable_replaces_and_disable_stops() -> None:
    @flow
    def my_flow() -> int:
        return 1

    first = journal.enable(":memory:")
    second = journal.enable(":memory:")
    try:
        assert journal.current() is second
        my_flow()
        assert len(second.flow_runs()) == 1
        with pytest.raises(RuntimeError, match="closed"):
            first.flow_runs()
    finally:
        journal.disable()
    assert journal.current() is None
    my_flow()  # no journal: nothing recorded, nothing raised
    assert actorflow.journal.current() is None


def _read_all(fd: int) -> str:
    import select

    chunks = []
    while select.select([fd], [], [], 0)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode(errors="replace")


def test_progress_is_drawn_on_a_terminal_and_never_elsewhere() -> None:
    import pty

    from actorflow._journal._progress import Progress

    @task
    def inc(x: int) -> int:
        return x + 1

    @flow(flow_run_name="long-one")
    def my_flow(n: int) -> None:
        futures = inc.map(range(n))
        futures.wait()
        current = journal.current()
        assert current is not None
        current.flush()  # a batch written while the flow runs: the line is drawn now

    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w")
    j = journal.enable(":memory:", progress=Progress(terminal, after=0.0))
    try:
        my_flow(20)
    finally:
        journal.disable()
    drawn = _read_all(master)
    terminal.close()
    os.close(master)
    assert "Flow run 'long-one' [" in drawn
    assert "20/20 done 20 · failed 0 · running 0" in drawn
    assert "| inc 20/20" in drawn  # per task too
    assert j.progress is not None

    read, write = os.pipe()
    pipe = os.fdopen(write, "w")
    journal.enable(":memory:", progress=Progress(pipe, after=0.0))
    try:
        my_flow(20)
    finally:
        journal.disable()
    pipe.close()
    assert os.read(read, 1024) == b""  # not a terminal: nothing drawn
    os.close(read)
    assert journal.enable(":memory:", progress=False).progress is None
    journal.disable()


def test_progress_counts_each_task_apart() -> None:
    import pty

    from actorflow._journal._progress import Progress

    @task
    def inc(x: int) -> int:
        return x + 1

    @task
    def boom(x: int) -> int:
        raise ValueError(x)

    @flow(flow_run_name="two-tasks")
    def my_flow() -> None:
        inc.map(range(12)).wait()
        boom.map(range(3)).wait()
        current = journal.current()
        assert current is not None
        current.flush()

    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w")
    journal.enable(":memory:", progress=Progress(terminal, after=0.0))
    try:
        my_flow()
    finally:
        journal.disable()
    drawn = _read_all(master)
    terminal.close()
    os.close(master)
    assert "15/15 done 12 · failed 3 · running 0 | inc 12/12 | boom 3/3 3 failed" in drawn


def test_the_terminal_views_of_the_cli(mem: Journal) -> None:
    from actorflow._cli.runs import parse_age, plain_table, render_tree

    @task
    def bad() -> None:
        raise ValueError("no luck")

    @flow(flow_run_name="viewed")
    def my_flow() -> None:
        bad.submit().wait()

    my_flow()
    run = mem.run(only_flow(mem).id)
    text = render_tree(run, mem.runs(flow_run_id=run.id, history=True), mem.logs([run.id]))
    assert text.startswith("flow run 'viewed' [Completed]")
    assert "  task run 'bad-" in text and "ValueError: no luck" in text
    assert "states: Pending@+0.000s -> Running@" in text
    assert plain_table("T", ["a", "bb"], [["xyz", "1"]]) == "T\na    bb\nxyz  1"
    assert parse_age("90") == 90 and parse_age("15m") == 900 and parse_age("2d") == 172800
    with pytest.raises(ValueError, match="--older-than"):
        parse_age("soon")


def test_queued_events_stay_bounded_when_runs_outpace_the_writer() -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    @flow
    def many() -> list[int]:
        return [inc(i) for i in range(300)]  # one after another: 3 events each

    # A writer that never wakes by itself: only the threads making runs write the queue (a
    # new run checks the queue: what is queued is bounded by the limit and the runs in flight).
    j = journal.enable(Journal(":memory:", interval=3600, max_queued=50, progress=False))
    try:
        assert many() == list(range(1, 301))
        stats = j.statistics()
        assert stats.queued <= 50 + 3  # the limit, and the events of the run in flight
        assert stats.batches >= 5 and stats.writer_running
        assert len(j.runs(kind="task", state="Completed")) == 300
        assert j.statistics().queued == 0 and j.statistics().unfinished_runs == 0
    finally:
        journal.disable()
    with pytest.raises(ValueError, match="max_queued"):
        Journal(":memory:", max_queued=0)


def test_runs_show_nests_subflows_and_their_task_runs(mem: Journal) -> None:
    from actorflow._cli.runs import render_tree

    @task
    def leaf() -> int:
        return 1

    @flow(flow_run_name="inner")
    def inner() -> int:
        return leaf()

    @flow(flow_run_name="outer")
    def outer() -> int:
        return inner() + leaf()

    assert outer() == 2
    (top,) = [s.run for s in mem.flow_runs() if s.run.name == "outer"]
    (sub,) = mem.runs(kind="flow", name="inner")
    assert sub.flow_run_id == top.id and sub.parent_id == top.id
    children = mem.runs(flow_run_id=top.id, history=True) + mem.runs(
        flow_run_id=sub.id, history=True
    )
    lines = render_tree(mem.run(top.id), children, []).splitlines()
    heads = [line for line in lines if line.lstrip().startswith(("flow run '", "task run '"))]
    assert [len(h) - len(h.lstrip()) for h in heads] == [0, 2, 4, 2]
    assert heads[0].startswith("flow run 'outer'") and "flow run 'inner'" in heads[1]


def test_a_journal_of_another_layout_is_kept_aside_and_a_new_one_begun(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    path = tmp_path / "journal.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, kind TEXT)")  # not this layout
    old.execute("INSERT INTO runs VALUES ('x', 'flow')")
    old.commit()
    old.close()

    @flow
    def small() -> int:
        return 1

    with caplog.at_level("WARNING", logger="actorflow"):
        j = journal.enable(path, progress=False)
    try:
        small()
        assert [r.spec_name for r in j.runs()] == [small.name]
    finally:
        journal.disable()
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("journal.db.v0-")]
    assert sqlite3.connect(aside).execute("SELECT id FROM runs").fetchall() == [("x",)]
    assert any("has another layout" in r.getMessage() for r in caplog.records)


def test_a_journal_from_before_deliveries_were_kept_apart_gains_the_column(tmp_path: Any) -> None:
    import sqlite3

    from actorflow._journal._store import _SCHEMA

    path = tmp_path / "journal.db"
    start = _SCHEMA.index("    history TEXT NOT NULL,")
    end = _SCHEMA.index(");", start)
    before = _SCHEMA[:start] + "    history TEXT NOT NULL\n" + _SCHEMA[end:]  # no earlier column
    db = sqlite3.connect(path)
    db.executescript(before)
    db.close()

    @flow
    def small() -> int:
        return 1

    j = journal.enable(path, progress=False)
    try:
        small()
        (record,) = j.runs(history=True)
        assert [t.state_name for t in record.transitions] == ["Pending", "Running", "Completed"]
    finally:
        journal.disable()
    assert not [p for p in tmp_path.iterdir() if ".v" in p.name]  # migrated in place


def test_state_names_with_braces_and_quotes_are_kept_as_given(mem: Journal) -> None:
    from actorflow.states import Completed

    @task
    def odd() -> Any:
        return Completed(name='Done {0} "quoted" }{')

    @flow
    def my_flow() -> None:
        odd()

    my_flow()
    (run,) = task_runs(mem)
    assert states(run) == ["Pending", "Running", 'Done {0} "quoted" }{']
    assert run.state_name == 'Done {0} "quoted" }{' and run.finished
    stamps = [t.timestamp_ns for t in run.transitions]
    assert stamps == sorted(stamps) and run.start_ns == stamps[1] and run.end_ns == stamps[2]
