"""A process that forks after using actorflow (the runtime loop, worker pools, the cache, a flow
still running on another thread) runs sync and async flows in the child, on asyncio and trio.

tests/test_cancellation_and_pool.py covers a fork after a sync flow with async tasks; here the
child inherits more: cache records in memory and on disk, the storage's open lock file, parked
and busy worker threads, and a flow in flight at the moment of the fork."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import child_env

FORK_AFTER_EVERYTHING = r"""
import asyncio, json, os, signal, sys, threading
import trio
from actorflow import flow, task, RunRecorder
from actorflow.task_runners import ThreadPoolTaskRunner

STORAGE = sys.argv[1]
calls = []

@task(result_storage=STORAGE, cache_key_fn=lambda context, parameters: f"fork/{parameters['x']}")
def cached(x):
    calls.append(x)
    return x * 100

@task
async def ainc(x):
    await asyncio.sleep(0) if sniff() == "asyncio" else await trio.sleep(0)
    return x + 1

def sniff():
    import sniffio
    return sniffio.current_async_library()

@task
def inc(x):
    return x + 1

@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def sync_flow(x):
    # an async task of a sync flow runs on the runtime loop; the map on the pool's threads
    return [ainc.submit(x).result(), sum(inc.map(range(x)).result()), cached(x)]

@flow
async def async_flow(x):
    futures = ainc.map(range(x))
    return [await f for f in futures]

gate, in_flight = threading.Event(), threading.Event()

@task
def blocked():
    in_flight.set()
    gate.wait(10)

@flow
def background():
    blocked.submit().wait()

def outcomes(x):
    return {
        "sync": sync_flow(x),
        "asyncio": asyncio.run(async_flow(x)),
        "trio": trio.run(async_flow, x),
    }

parent = outcomes(3)  # the runtime loop, pools, cache (memory and disk) are all in use now
worker = threading.Thread(target=background)
worker.start()
assert in_flight.wait(10)  # a flow is in flight on another thread, a body on a pool thread
calls.clear()
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # a child that hangs must not outlive the test
    try:
        with RunRecorder() as recorder:
            child = {"again": outcomes(3), "new": outcomes(4), "calls": calls}
        runs = recorder.runs()
        ends = sorted({recorder.history(r)[-1] for r in runs})
        child["runs"], child["ends"] = len(runs), ends
        sys.stdout.write(json.dumps(child) + "\n")
        sys.stdout.flush()
    except BaseException as exc:
        sys.stderr.write(f"child failed: {exc!r}\n")
        os._exit(3)
    os._exit(0)
_, status = os.waitpid(pid, 0)
gate.set()
worker.join(10)
print(json.dumps({"parent": parent, "status": os.waitstatus_to_exitcode(status)}))
"""


def test_a_child_forked_after_everything_was_used_runs_sync_and_async_flows(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_EVERYTHING, str(tmp_path)],
        env=child_env(ACTORFLOW_LOGGING_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])
    assert report["status"] == 0, proc.stderr[-3000:]
    child = json.loads(lines[0])
    expected = {"sync": [4, 6, 300], "asyncio": [1, 2, 3], "trio": [1, 2, 3]}
    assert report["parent"] == expected
    assert child["again"] == expected
    assert child["new"] == {"sync": [5, 10, 400], "asyncio": [1, 2, 3, 4], "trio": [1, 2, 3, 4]}
    # The parent's record was found on disk; only the new key was computed, in the child.
    assert child["calls"] == [4]
    assert child["ends"] == ["Cached", "Completed"]
    assert child["runs"] > 20
