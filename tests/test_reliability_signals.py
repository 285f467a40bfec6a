"""SIGINT and SIGTERM to a script running a flow (sync, or async on asyncio or trio): every run
ends Cancelled or Crashed, as an observer in the script records it, the process exits within 2 s
of the first signal, and the cache it wrote stays readable."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import child_env

from actorflow import task
from actorflow._cache._records import decode_record

SCRIPT = r"""
import json, sys, time
from actorflow import flow, observe, task
from actorflow.task_runners import ThreadPoolTaskRunner

KIND = sys.argv[1]
EVENTS = open(sys.argv[2], "a", buffering=1)  # a line per transition, written at once


def record(event):
    EVENTS.write(json.dumps([event.run_id, event.run_kind, event.state.name]) + "\n")


started = []


@task(persist_result=True, cache_key_fn=lambda context, parameters: "signals/one")
def cached(x):
    return x * 10


@task
def sleepy(i):
    started.append(i)
    time.sleep(30)


@task
async def asleep(i):
    import anyio

    started.append(i)
    await anyio.sleep(30)


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
def sync_flow():
    cached(1)
    futures = sleepy.map(range(4))  # two bodies run, two runs wait in the queue
    while len(started) < 2:
        time.sleep(0.005)
    print("ready", flush=True)
    return [f.result() for f in futures]


@flow(task_runner=ThreadPoolTaskRunner(max_workers=2))
async def async_flow():
    import anyio

    cached(1)
    futures = sleepy.map(range(4)) + asleep.map(range(2))
    while len(started) < 4:
        await anyio.sleep(0.005)
    print("ready", flush=True)
    return [await f for f in futures]


with observe(record):
    if KIND == "sync":
        sync_flow()
    elif KIND == "asyncio":
        import asyncio

        asyncio.run(async_flow())
    else:
        import trio

        trio.run(async_flow)
"""

FINAL = {"Completed", "Cached", "Failed", "TimedOut", "Cancelled", "Crashed"}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", ["sync", "asyncio", "trio"])
def test_a_signal_ends_every_run_and_the_process_at_once(
    kind: str, signum: signal.Signals, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, kind, str(events)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(ACTORFLOW_HOME=str(home), ACTORFLOW_LOGGING_LEVEL="WARNING"),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr and proc.stderr.read()
        proc.send_signal(signum)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert elapsed < 2, f"took {elapsed:.1f}s to exit after one {signum.name}"
    # The process ends as the signal would have ended it.
    assert proc.returncode == -signum, err[-2000:]

    histories: dict[str, tuple[str, list[str]]] = {}
    for line in events.read_text().splitlines():
        run_id, run_kind, name = json.loads(line)
        histories.setdefault(run_id, (run_kind, []))[1].append(name)
    ends: dict[tuple[str, str], int] = {}
    for run_kind, names in histories.values():
        finals = [n for n in names if n in FINAL]
        assert len(finals) == 1 and names[-1] == finals[0], names  # one end, and it is last
        ends[run_kind, finals[0]] = ends.get((run_kind, finals[0]), 0) + 1
    # The cached run completed before the signal. Bodies running on threads are abandoned
    # (Crashed); queued runs and async bodies are Cancelled. The flow: Crashed where the
    # interrupt is raised in its thread (sync; trio's Ctrl-C), else Cancelled (asyncio's Ctrl-C
    # cancels the main task; SIGTERM cancels an async flow's scope).
    crashed_flow = kind == "sync" or (kind == "trio" and signum == signal.SIGINT)
    expected = {
        ("flow", "Crashed" if crashed_flow else "Cancelled"): 1,
        ("task", "Completed"): 1,
        ("task", "Crashed"): 2,
        ("task", "Cancelled"): 2 if kind == "sync" else 4,
    }
    assert ends == expected, err[-2000:]

    # The cache stays readable: every record verifies, none is half-written, and a task of
    # this process finds the script's result.
    storage = home / "storage"
    records = [p for p in storage.rglob("*") if p.is_file() and p.name != ".lock"]
    assert [p.relative_to(storage).as_posix() for p in records] == ["signals/one"]
    decode_record(records[0].read_bytes(), "signals/one")

    @task(result_storage=str(storage), cache_key_fn=lambda context, parameters: "signals/one")
    def cached(x: int) -> int:
        raise AssertionError("should be a cache hit")  # pragma: no cover

    state = cached(1, return_state=True)
    assert state.name == "Cached" and state.result() == 10


@pytest.mark.anyio
async def test_concurrent_async_flows_share_the_handlers_and_put_the_old_ones_back(
    anyio_backend: str,
) -> None:
    import anyio

    from actorflow import flow

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    during: list[object] = []
    first_done = anyio.Event()

    @flow
    async def short() -> None:
        during.append(signal.getsignal(signal.SIGTERM))

    @flow
    async def long() -> None:
        await first_done.wait()  # outlives the other flow, which installed the handlers
        during.append(signal.getsignal(signal.SIGTERM))

    async with anyio.create_task_group() as tg:
        tg.start_soon(long)
        await anyio.lowlevel.checkpoint()
        await short()
        first_done.set()
    assert len(during) == 2 and during[0] == during[1] and during[0] not in before
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_an_ignored_sigterm_stays_ignored() -> None:
    from actorflow import flow

    seen: list[object] = []

    @flow
    def host() -> None:
        seen.append(signal.getsignal(signal.SIGTERM))

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        host()
        assert seen == [signal.SIG_IGN]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
