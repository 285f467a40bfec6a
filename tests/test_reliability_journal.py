"""Reliability of the run journal: observers that raise, a full disk, and signals in scripts.

Pass criteria, each measured, never assumed:

- a journal subscriber or a process-wide sink that raises changes no run's states or results,
  and the journal still records every run;
- while the journal's database cannot be written ("database or disk is full", SQLite's own
  SQLITE_FULL, made real by capping the file's pages), runs are unaffected, the failure is
  reported once and clearly, the records are written once the disk has room again, and the file
  passes SQLite's integrity check and reads in another process;
- SIGINT or SIGTERM to a script running a flow (sync, or async on asyncio or trio): the process
  exits within 2 s of the signal, every run in the journal file (read by this process
  afterwards) has exactly one final state, Cancelled or Crashed for those it stopped, the file
  passes SQLite's integrity check, and results cached before the signal read back.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import child_env

from actorflow import flow, journal, task
from actorflow._core import add_sink, remove_sink
from actorflow.journal import Journal, RunRecord
from actorflow.runs import TransitionEvent

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def final_states(record: RunRecord) -> list[str]:
    return [t.state_type for t in record.transitions if t.state_type in FINAL]


def integrity(path: Path) -> str:
    """SQLite's own verdict on the file, from a connection of its own."""
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


@task(retries=1)
def flaky_double(x: int, failures: list[int]) -> int:
    if x == 3 and not failures:
        failures.append(x)
        raise RuntimeError("first attempt fails")
    return 2 * x


@task
def broken(x: int) -> int:
    raise ValueError(f"broken {x}")


@flow
def mixed(n: int) -> tuple[list[int], str]:
    doubled = flaky_double.map(range(n), [[]] * n).result()
    failed = broken.submit(1)
    failed.wait()
    return doubled, failed.state.name


def run_mixed(n: int) -> Any:
    state = mixed(n, return_state=True)
    return state.type.value, state.result()


@pytest.fixture
def journal_file(tmp_path: Path) -> Iterator[Journal]:
    j = journal.enable(tmp_path / "journal.db", interval=0.05)
    try:
        yield j
    finally:
        journal.disable()


# -- observers that raise -------------------------------------------------------------------
def test_raising_subscriber_and_sink_never_break_a_run(
    journal_file: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    expected = run_mixed(6)  # what the runs do with nobody listening
    calls = {"subscriber": 0, "sink": 0}

    def subscriber(event: TransitionEvent) -> None:
        calls["subscriber"] += 1
        raise RuntimeError("subscriber is broken")

    def sink(*transition: Any) -> None:
        calls["sink"] += 1
        raise KeyError("sink is broken")

    add_sink(sink)  # first: the journal's own sink comes after it
    subscription = journal.subscribe(subscriber)
    try:
        with caplog.at_level(logging.ERROR, logger="actorflow"):
            got = run_mixed(6)
    finally:
        subscription.cancel()
        remove_sink(sink)
    assert got == expected == ("COMPLETED", ([0, 2, 4, 6, 8, 10], "Failed"))
    assert calls["subscriber"] == calls["sink"] > 20  # every transition, every run
    assert "subscriber is broken" in caplog.text and "sink is broken" in caplog.text
    assert "the run goes on" in caplog.text
    # The journal, a sink after the broken one, heard every run of both flows.
    flows = journal_file.runs(kind="flow", history=True)
    assert [r.state_name for r in flows] == ["Completed", "Completed"]
    for flow_run in flows:
        tasks = journal_file.runs(flow_run_id=flow_run.id, history=True)
        assert sorted(r.state_name for r in tasks) == ["Completed"] * 6 + ["Failed"]
        assert all(len(final_states(r)) == 1 for r in tasks)


# -- a full disk ------------------------------------------------------------------------------
def test_a_full_disk_leaves_runs_unaffected_and_the_journal_readable(
    journal_file: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.db"
    assert run_mixed(2)[0] == "COMPLETED"
    journal_file.flush()
    db = journal_file._db  # the writer's own connection: cap the file at what it has now
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="actorflow"):
        results = [run_mixed(40) for _ in range(3)]  # far more than fits
        journal_file.flush()
        stats = journal_file.statistics()
        assert results == [("COMPLETED", ([2 * i for i in range(40)], "Failed"))] * 3
        assert stats.write_error is not None and "database or disk is full" in stats.write_error
        assert stats.unwritten >= 3 * 42 and stats.dropped == 0
        reports = [r for r in caplog.records if "cannot be written" in r.getMessage()]
        assert len(reports) == 1, "reported once per outage, not once per batch"
        assert str(path) in reports[0].getMessage()
        assert "database or disk is full" in reports[0].getMessage()
        # Meanwhile another process reads what was written before the disk filled up.
        assert integrity(path) == "ok"
        assert len(Journal.open(path).runs(kind="flow")) == 1
        db.execute("PRAGMA max_page_count = 1073741823")  # room again
        assert run_mixed(2)[0] == "COMPLETED"
        journal_file.flush()
    assert "is written again" in caplog.text
    stats = journal_file.statistics()
    assert (stats.write_error, stats.unwritten) == (None, 0)
    journal.disable()
    assert integrity(path) == "ok"
    reader = Journal.open(path)
    flows = reader.runs(kind="flow")
    assert [r.state_name for r in flows] == ["Completed"] * 5  # none lost
    assert len(reader.runs(kind="task")) == 2 * 3 + 3 * 41
    assert all(r.finished for r in reader.runs())


def test_a_journal_that_stays_full_closes_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = journal.enable(path)
    try:
        assert run_mixed(2)[0] == "COMPLETED"
        j.flush()
        pages = j._db.execute("PRAGMA page_count").fetchone()[0]
        j._db.execute(f"PRAGMA max_page_count = {pages}")
        assert run_mixed(20)[0] == "COMPLETED"
    finally:
        journal.disable()  # flushes into a full file: reported, not raised
    assert integrity(path) == "ok"
    assert len(Journal.open(path).runs(kind="flow")) == 1


# -- signals in scripts -----------------------------------------------------------------------
SCRIPT = r"""
import sys, threading, time
from actorflow import flow, task
from actorflow.cache_policies import INPUTS
from actorflow.task_runners import ThreadPoolTaskRunner

started = threading.Semaphore(0)

@task(cache_policy=INPUTS)
def quick(i):
    return i

@task
def sleepy(i):
    started.release()
    time.sleep(30)
    return i

@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def waits():
    done = quick.map(range(3)).result()
    futures = sleepy.map(range(8))  # more runs than the pool has workers: some stay queued
    for _ in range(4):
        started.acquire()
    print("started", flush=True)
    return done, [f.result() for f in futures]

if len(sys.argv) > 1:  # again, after the signal: the cached results read back
    @flow
    def again():
        futures = quick.map(range(3))
        values = futures.result()
        return [(f.state.name, v) for f, v in zip(futures, values)]

    print(again())
else:
    waits()
"""


ASYNC_SCRIPT = r"""
import sys, anyio
from actorflow import flow, task

@task
async def quick(i):
    return i

@task
async def sleepy(i, started):
    started.append(i)
    await anyio.sleep(30)
    return i

@flow
async def waits():
    done = [await f for f in quick.map(range(3))]
    started = []
    futures = sleepy.map(range(8), [started] * 8)
    while len(started) < 8:
        await anyio.sleep(0.01)
    print("started", flush=True)
    return done, [await f for f in futures]

anyio.run(waits, backend=sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.parametrize("script", ["sync", "asyncio", "trio"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_a_scripts_runs_in_the_journal(
    script: str, signum: int, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    code = [SCRIPT] if script == "sync" else [ASYNC_SCRIPT, script]
    proc = subprocess.Popen(
        [sys.executable, "-c", *code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(ACTORFLOW_JOURNAL=str(path), ACTORFLOW_HOME=str(tmp_path)),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signum)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert elapsed < 2, f"took {elapsed:.2f}s to exit after {signal.Signals(signum).name}"
    assert proc.returncode != 0
    assert integrity(path) == "ok"
    reader = Journal.open(path)
    runs = reader.runs(history=True)
    ends = sorted((r.kind, r.state_name) for r in runs)
    assert all(r.finished and len(final_states(r)) == 1 for r in runs), ends
    counts: dict[tuple[str, str], int] = {}
    for end in ends:
        counts[end] = counts.get(end, 0) + 1
    (flow_run,) = reader.runs(kind="flow", history=True)
    assert flow_run.transitions[-1].message  # says what stopped it
    if signum == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM  # its runs and journal written, then killed
    if script != "sync":  # every async task run is cancelled; the flow Cancelled or Crashed
        assert counts.pop(("task", "Completed")) == 3 and counts.pop(("task", "Cancelled")) == 8
        assert list(counts) in ([("flow", "Cancelled")], [("flow", "Crashed")]), err
        return
    # Finished bodies stay Completed; started ones are abandoned (Crashed), queued ones never
    # start (Cancelled); the flow is Crashed.
    assert counts == {
        ("flow", "Crashed"): 1,
        ("task", "Completed"): 3,
        ("task", "Crashed"): 4,
        ("task", "Cancelled"): 4,
    }, err
    if signum == signal.SIGTERM:
        assert "termination signal (SIGTERM)" in str(flow_run.transitions[-1].message)
    # The results cached before the signal read back in a new process.
    again = subprocess.run(
        [sys.executable, "-c", SCRIPT, "again"],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(ACTORFLOW_JOURNAL=str(path), ACTORFLOW_HOME=str(tmp_path)),
    )
    assert again.stdout.strip() == str([("Cached", i) for i in range(3)]), again.stderr
