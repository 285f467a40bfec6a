"""Ctrl-C in a script: control comes back at once, and every run ends in a final state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from support import child_env

SCRIPT = r"""
import json, sys, time
from actorflow import RunRecorder, flow, task
from actorflow.task_runners import ThreadPoolTaskRunner

@task
def sleepy(i):
    time.sleep(30)
    return i

@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def waits():
    futures = sleepy.map(range(8))  # more runs than the pool has workers: some stay queued
    return [f.result() for f in futures]

recorder = RunRecorder()
started = time.monotonic()
try:
    with recorder:
        print("started", flush=True)
        waits()
except KeyboardInterrupt:
    last = {}
    for event in recorder.events:
        last[event.run_id] = (event.run_kind, event.state.name, event.state.is_final())
    print(json.dumps(sorted(last.values())), flush=True)
"""


def test_one_ctrl_c_ends_a_sync_flow_and_its_runs_at_once() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        time.sleep(1.0)  # the 4 workers are inside their 30-second sleeps
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 2, f"took {elapsed:.1f}s to exit after one SIGINT"
    ends = [tuple(end) for end in json.loads(out.strip().splitlines()[-1])]
    assert all(final for _, _, final in ends), ends
    counts: dict[tuple[str, str], int] = {}
    for kind, name, _ in ends:
        counts[kind, name] = counts.get((kind, name), 0) + 1
    # Started bodies are abandoned (Crashed), queued runs never start (Cancelled).
    assert counts == {("flow", "Crashed"): 1, ("task", "Crashed"): 4, ("task", "Cancelled"): 4}
    assert "abandoned" in err
