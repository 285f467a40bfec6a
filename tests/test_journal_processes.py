"""The journal across processes: read while written, after a kill, and through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from actorflow.journal import Journal

# A flow whose tasks finish, then one task waits for a line on stdin; the script says "ready"
# once the finished runs are written, so the test needs no sleeping.
SCRIPT = """
import sys
import actorflow
from actorflow import flow, task, journal

@task
def double(x):
    return 2 * x

@task
def wait_for_word():
    return sys.stdin.readline().strip()

@task
def fails():
    raise ValueError("broken on purpose")

@flow(flow_run_name="watched")
def watched(n):
    done = double.map(range(n)).result()
    fails.submit().wait()
    waiter = wait_for_word.submit()
    while len(journal.current().runs(state="Running", kind="task")) < 1:
        pass  # until the waiting task is running (runs() writes what is queued first)
    print("ready", flush=True)
    return sum(done), waiter.result()

print(watched(3))
"""


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / "journal.db"
    env = {**os.environ, "ACTORFLOW_JOURNAL": str(path)}
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.kill()
        raise AssertionError(f"the child said {line!r}; stderr: {child.communicate()[1]}")
    return child, path


def _cli(*args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "actorflow", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


@pytest.mark.slow
def test_another_process_lists_the_runs_of_a_running_flow(tmp_path: Path) -> None:
    child, path = _start(tmp_path)
    try:
        listing = _cli("runs", "--journal", str(path))  # not a terminal: JSON
        (flow_run,) = listing["flow_runs"]
        assert flow_run["name"] == "watched" and flow_run["state_name"] == "Running"
        assert not flow_run["finished"] and flow_run["process_alive"]
        assert flow_run["task_runs"] == {"Completed": 3, "Failed": 1, "Running": 1}
        shown = _cli("runs", "show", flow_run["id"][-6:], "--journal", str(path), "--json")
        assert shown["run"]["id"] == flow_run["id"]
        by_name = {r["spec_name"]: r for r in shown["task_runs"]}
        failed = by_name["fails"]["transitions"][-1]
        assert failed["state_name"] == "Failed"
        assert "ValueError: broken on purpose" in failed["traceback"]
        assert [t["state_name"] for t in by_name["wait_for_word"]["transitions"]] == [
            "Pending",
            "Running",
        ]
        assert any("broken on purpose" in line["message"] for line in shown["logs"])
    finally:
        out, err = child.communicate("hello\n", timeout=60)
    assert child.returncode == 0, err
    assert out.strip() == "(6, 'hello')"
    (flow_run,) = _cli("runs", "--journal", str(path), "--json")["flow_runs"]
    assert flow_run["state_name"] == "Completed" and flow_run["finished"]
    assert flow_run["task_runs"] == {"Completed": 4, "Failed": 1}


@pytest.mark.slow
def test_a_killed_process_leaves_its_runs_unfinished(tmp_path: Path) -> None:
    child, path = _start(tmp_path)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    journal = Journal.open(path)
    try:
        (summary,) = journal.flow_runs()
        run = summary.run
        assert run.state_name == "Running" and not run.finished and not run.process_alive
        assert summary.task_runs == {"Completed": 3, "Failed": 1, "Running": 1}
        (waiting,) = journal.runs(state="Running", kind="task", history=True)
        assert [t.state_name for t in waiting.transitions] == ["Pending", "Running"]
        assert waiting.end_ns is None and not waiting.process_alive
    finally:
        journal.close()
    # Its unfinished runs go with --older-than like any other (their process is gone).
    assert _cli("runs", "prune", "--older-than", "0", "--journal", str(path))["deleted_runs"] == 6


def test_the_cli_explains_a_missing_journal_and_bad_ids(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "actorflow", "runs", "--journal", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no run journal at" in missing.stderr
    journal = Journal(tmp_path / "empty.db")
    journal.close()
    bad = subprocess.run(
        [sys.executable, "-m", "actorflow", "runs", "show", "zz", "--journal", str(journal.path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "is not a run id" in bad.stderr
    prune = subprocess.run(
        [sys.executable, "-m", "actorflow", "runs", "prune", "--journal", str(journal.path)],
        capture_output=True,
        text=True,
    )
    assert prune.returncode == 2 and "--older-than AGE, --keep N" in prune.stderr


def test_a_forked_child_journals_its_own_runs_as_its_own_process(tmp_path: Path) -> None:
    import warnings

    from actorflow import flow, journal, task

    @task
    def inc(x: int) -> int:
        return x + 1

    @flow
    def count(n: int) -> list[int]:
        return inc.map(range(n)).result()

    path = tmp_path / "journal.db"
    writer = journal.enable(path, progress=False)
    try:
        count(5)  # queued, not yet written, when the child is forked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: on purpose
            pid = os.fork()
        if pid == 0:  # the child: its own runs, under its own process
            code = 1
            try:
                count(3)
                current = journal.current()
                assert current is not None
                current.flush()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        count(2)
        writer.flush()
    finally:
        journal.disable()
    reader = Journal.open(path)
    try:
        seen = sorted(
            (s.run.pid == os.getpid(), sum(s.task_runs.values())) for s in reader.flow_runs()
        )
    finally:
        reader.close()
    assert seen == [(False, 3), (True, 2), (True, 5)]  # nothing of the parent's written twice
