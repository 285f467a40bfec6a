"""Computing once: concurrent runs of one key, in threads, on event loops and across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorflow import flow, task
from actorflow.cache_policies import INPUTS, TASK_SOURCE
from actorflow.results import LocalStorage
from actorflow.task_runners import ThreadPoolTaskRunner


def test_concurrent_identical_runs_in_threads_compute_once() -> None:
    calls: list[int] = []
    release = threading.Event()

    @task(cache_policy=INPUTS)
    def slow(x: int) -> dict[str, int]:
        calls.append(x)
        assert release.wait(10)
        return {"x": x}

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
    def fan_out() -> list[str]:
        futures = slow.map([1] * 8)
        release.set()
        futures.wait()
        assert [f.result() for f in futures] == [{"x": 1}] * 8
        return sorted(f.state.name for f in futures)

    assert fan_out() == ["Cached"] * 7 + ["Completed"]
    assert calls == [1]


def test_when_the_computing_run_fails_a_waiting_run_computes() -> None:
    calls: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    @task(cache_policy=INPUTS)
    def flaky(x: int) -> int:
        with lock:
            calls.append(x)
            first = len(calls) == 1
        assert release.wait(10)
        if first:
            raise RuntimeError("first attempt fails")
        return x

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def fan_out() -> list[str]:
        futures = flaky.map([5] * 4)
        release.set()
        futures.wait()
        return sorted(f.state.name for f in futures)

    assert fan_out() == ["Cached", "Cached", "Completed", "Failed"]
    assert calls == [5, 5]


@pytest.mark.anyio
async def test_concurrent_identical_async_runs_compute_once(tmp_path: Path) -> None:
    calls: list[int] = []
    release = anyio.Event()
    names: list[str] = []

    @task(cache_policy=INPUTS, result_storage=str(tmp_path))
    async def fetch(x: int) -> int:
        calls.append(x)
        await release.wait()
        return x * 10

    async def one() -> None:
        state = await fetch(4, return_state=True)
        assert await state.result() == 40
        names.append(state.name)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(one)
        await anyio.sleep(0.01)
        release.set()
    assert calls == [4]
    assert sorted(names) == ["Cached"] * 5 + ["Completed"]


def test_a_run_nested_in_the_computing_run_does_not_deadlock() -> None:
    # TASK_SOURCE gives every call the same key: the inner call must not wait for the outer.
    @task(cache_policy=TASK_SOURCE)
    def countdown(n: int) -> int:
        return 0 if n == 0 else 1 + countdown(n - 1)

    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(countdown(2)), daemon=True)
    worker.start()
    worker.join(10)
    assert done == [2]
    # Each nested call computed; the first record written (by the innermost) is kept.
    assert countdown(5) == 0


# -- across processes ------------------------------------------------------------------------------
SCRIPT = """
import sys, time
from actorflow import task
from actorflow.cache_policies import INPUTS

@task(cache_policy=INPUTS, result_storage=sys.argv[1])
def expensive(x):
    with open(sys.argv[2], "a") as log:
        log.write(f"computed {x}\\n")
    time.sleep(float(sys.argv[3]))
    return {"x": x, "by": sys.argv[4]}

state = expensive(21, return_state=True)
print(state.name, state.result()["by"])
"""


def _start(script: Path, store: Path, log: Path, sleep: float, name: str) -> Any:
    env = dict(os.environ, PYTHONHASHSEED=str(hash(name) % 1000))
    return subprocess.Popen(
        [sys.executable, str(script), str(store), str(log), str(sleep), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(script.parent),
    )


def test_processes_compute_once_and_reuse_each_others_records(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    store, log = tmp_path / "store", tmp_path / "computed.log"
    # Two processes start together on the same key: one computes, the other waits and reads.
    procs = [_start(script, store, log, 0.5, name) for name in ("a", "b")]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.split())
    assert log.read_text() == "computed 21\n"
    states = sorted(state for state, _ in outputs)
    assert states == ["Cached", "Completed"]
    assert outputs[0][1] == outputs[1][1]  # both report the one computed result
    # A later process reads the record the first one wrote.
    third = _start(script, store, log, 0.0, "c")
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0, err
    assert out.split()[0] == "Cached"
    assert log.read_text() == "computed 21\n"


HOLDER = """
import sys
from actorflow.results import LocalStorage
storage = LocalStorage(sys.argv[1])
assert storage.try_lock("key") is not None
print("locked", flush=True)
sys.stdin.readline()
"""


def test_local_lock_is_exclusive_across_processes_and_dies_with_its_holder(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        storage = LocalStorage(tmp_path)
        assert storage.try_lock("key") is None  # held by the other process
        other = storage.try_lock("another key")
        assert other is not None
        storage.unlock(other)
    finally:
        holder.kill()  # no unlock: the kernel drops the lock with the process
        holder.communicate(timeout=10)
    handle = storage.try_lock("key")
    assert handle is not None
    storage.unlock(handle)
