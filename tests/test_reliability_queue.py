"""Reliability of the durable queue: workers killed and paused, a broker restarted.

Pass criteria, each counted:

- **worker death** (SQLite and Redis): 1,000 delayed runs; a worker is SIGKILLed three times
  at random points (after a random number of its own bodies) while a second worker keeps going.
  Every run has exactly one final state (the broker tells its producer of each run's end once:
  one winning final write per run), every result is readable from its future and right, and
  every run has exactly one final state in the workers' shared journal. A body may run more than
  once (delivery is at least once: a killed worker's runs are redelivered), counted and reported;
- **stale worker** (SQLite and Redis): a worker paused with SIGSTOP past its lease, resumed
  after another worker finished its run, cannot overwrite that result or acknowledge the run:
  the stored result, the final state's time and the journal's end stay the second worker's;
- **broker restart** (Redis, its own ``redis-server`` with an append-only file synced at each
  write, killed with SIGKILL mid-stream and started again on the same port and file): producers
  and workers reconnect and no run acknowledged by Redis, nor any run delayed while it was down,
  is lost; ``.delay()`` never blocks meanwhile, and a run that cannot be written within
  ``ACTORFLOW_QUEUE_SEND_TIMEOUT`` fails its future with an error naming the broker.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import reliability_queue_tasks as rq
from support import child_env, isolated_queue

from actorflow._queue import BackgroundTaskFuture, broker, client, reset
from actorflow.exceptions import BrokerUnavailable
from actorflow.journal import Journal

TESTS = Path(__file__).resolve().parent
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@pytest.fixture(params=["sqlite", "redis"])
def queue(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The broker under test, isolated (its own SQLite file or Redis namespace), with leases
    of one second so that a dead worker's runs are redelivered quickly."""
    with isolated_queue(
        request.param,
        monkeypatch,
        ACTORFLOW_QUEUE_LEASE="1.0",
        ACTORFLOW_QUEUE_MAX_DELIVERIES="50",
        ACTORFLOW_QUEUE_SQLITE_SYNC="NORMAL",  # survives a killed process
    ) as broker_name:
        yield broker_name


def start_worker(
    task: str, journal: Path, stderr: Path, *, limit: int = 4
) -> subprocess.Popen[bytes]:
    """``actorflow worker`` in a process of its own, journaling to ``journal``."""
    env = child_env(TESTS, ACTORFLOW_JOURNAL=str(journal), ACTORFLOW_LOGGING_LEVEL="WARNING")
    command = [sys.executable, "-m", "actorflow", "worker", f"reliability_queue_tasks:{task}"]
    command += ["--limit", str(limit), "--grace", "5"]
    with open(stderr, "ab") as err:
        return subprocess.Popen(command, cwd=TESTS, env=env, stderr=err)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def bodies_of(log: Path, pid: int) -> int:
    """Bodies that process ``pid`` ran to their end."""
    mine = f" {pid}"
    return sum(line.endswith(mine) for line in lines(log))


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def final_transitions(journal: Journal, run_ids: list[str]) -> dict[str, list[str]]:
    """Per run id (32 hex digits): the final states in its journal history."""
    wanted = set(run_ids)
    found: dict[str, list[str]] = {}
    for record in journal.runs(kind="task", history=True):
        key = uuid.UUID(record.id).hex
        if key in wanted:
            found[key] = [t.state_type for t in record.transitions if t.state_type in FINAL]
    return found


# -- worker death -----------------------------------------------------------------------------
@pytest.mark.slow
def test_runs_survive_a_worker_killed_three_times(queue: str, tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    log, journal_path = tmp_path / "bodies.log", tmp_path / "journal.db"
    n = 1000
    futures = [rq.square.delay(i, str(log)) for i in range(n)]
    ids = [f._id for f in futures]
    client().flush()
    started = time.monotonic()
    survivor = start_worker("square", journal_path, tmp_path / "survivor.err")
    kills: list[tuple[int, int]] = []  # (bodies the victim completed, all bodies so far)
    try:
        for _ in range(3):
            victim = start_worker("square", journal_path, tmp_path / "victim.err")
            at = rng.randint(5, 60)  # a random point: after this many of its own bodies
            wait_until(
                lambda pid=victim.pid, at=at: bodies_of(log, pid) >= at,
                60,
                "the victim to run bodies",
            )
            time.sleep(rng.random() * 0.05)  # and somewhere within its next few
            victim.kill()
            assert victim.wait(30) == -signal.SIGKILL
            kills.append((bodies_of(log, victim.pid), len(lines(log))))
        # The survivor alone finishes: the killed worker's leased runs come back to it.
        b = broker()
        reply = client().reply
        ended: Counter[str] = Counter()
        deadline = time.monotonic() + 120
        while len(ended) < n and time.monotonic() < deadline:
            ended.update(b.finished_since(reply, 0.5))
        elapsed = time.monotonic() - started
        results = [f.result(timeout=10) for f in futures]
    finally:
        stop(survivor)
    bodies = Counter(int(line.split()[0]) for line in lines(log))
    records = b.read(ids)
    journal = Journal.open(journal_path)
    finals = final_transitions(journal, ids)
    print(
        f"seed {seed}; {queue}: {n} runs in {elapsed:.1f}s, kills after (victim's bodies, "
        f"all bodies) {kills}; bodies completed {sum(bodies.values())} ({len(bodies)} runs, "
        f"{sum(bodies.values()) - len(bodies)} re-executed); final writes {sum(ended.values())}"
    )
    assert all(done < n for _, done in kills)  # each kill landed mid-stream
    assert bodies_of(log, survivor.pid) > n // 2  # the survivor kept going
    assert results == [i * i for i in range(n)]  # none lost, each readable from its future
    assert set(bodies) == set(range(n))
    assert len(ended) == n and set(ended.values()) == {1}  # one final state per run, no dupes
    assert all(r is not None and r.final and r.type == "COMPLETED" for r in records)
    assert len(finals) == n and all(f == ["COMPLETED"] for f in finals.values())
    assert all(r.finished for r in journal.runs(kind="task"))
    assert BackgroundTaskFuture(ids[-1]).result(timeout=5) == (n - 1) ** 2  # from its id alone


# -- a stale worker ---------------------------------------------------------------------------
def pause_outside_a_write(proc: subprocess.Popen[bytes]) -> None:
    """SIGSTOP ``proc``, but not in the middle of a write to the SQLite broker: a process
    stopped there holds the file's write lock, and every other process waits for it (SQLite's
    locks are the file's; no broker on one file can take them back from a live process)."""
    b = broker()
    path = getattr(b, "path", None)
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        if path is None:
            return
        db = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # locked by the stopped process: let it finish
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            db.close()
    raise AssertionError("the worker never left the broker's write lock")


@pytest.mark.slow
def test_a_paused_worker_cannot_overwrite_or_acknowledge(queue: str, tmp_path: Path) -> None:
    log, journal_path = tmp_path / "bodies.log", tmp_path / "journal.db"
    paused_err = tmp_path / "paused.err"
    future = rq.whose.delay(str(log), 1.5)
    paused = start_worker("whose", journal_path, paused_err)
    second = None
    try:
        wait_until(lambda: f"started {paused.pid}" in lines(log), 60, "the first delivery")
        wait_until(lambda: future.state.is_running(), 30, "Running to be recorded")
        pause_outside_a_write(paused)  # inside its body, for longer than its one-second lease
        second = start_worker("whose", journal_path, tmp_path / "second.err")
        assert future.result(timeout=60) == second.pid
        record = broker().read([future._id])[0]
        assert record is not None and record.final

        def journaled_end() -> int | None:
            with contextlib.suppress(Exception):  # the file may not exist yet
                return Journal.open(journal_path).run(future.task_run_id).end_ns
            return None

        wait_until(lambda: journaled_end() is not None, 30, "the second worker's journal")
        end_before = journaled_end()
        paused.send_signal(signal.SIGCONT)
        wait_until(lambda: f"ended {paused.pid}" in lines(log), 30, "the paused body to end")
        wait_until(
            lambda: "not recorded: this worker lost its lease" in paused_err.read_text(),
            30,
            "the paused worker's write to be refused",
        )
        stop(paused)  # flushes its journal at exit
        assert paused.returncode == 0
    finally:
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
            paused.kill()
        if second is not None:
            stop(second)
    # Both bodies ran to their end; the first write (the second worker's) stands.
    expected = [
        f"{what} {pid}" for pid in (paused.pid, second.pid) for what in ("started", "ended")
    ]
    assert sorted(lines(log)) == sorted(expected)
    after = broker().read([future._id])[0]
    assert after == record  # same outcome, same final state and time
    assert BackgroundTaskFuture(future.task_run_id).result(timeout=5) == second.pid
    run = Journal.open(journal_path).run(future.task_run_id)
    assert run.end_ns == end_before == record.timestamp_ns
    assert [t.state_type for t in run.transitions if t.state_type in FINAL] == ["COMPLETED"]
    assert "lost its lease" in paused_err.read_text()


# -- a broker restart -------------------------------------------------------------------------
def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(folder: Path, persistent: bool = True) -> Iterator[Any]:
    """A ``redis-server`` of this test's own on a spare loopback port, with an append-only file
    synced at every write (so a SIGKILL loses nothing Redis acknowledged), or with no
    persistence at all: ``server.kill()`` and ``server.start()`` stop and start it on the same
    port (and file)."""
    port = spare_port()
    folder.mkdir(exist_ok=True)

    class Server:
        proc: subprocess.Popen[bytes] | None = None
        url = f"redis://127.0.0.1:{port}/0"

        def start(self) -> None:
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            command += ["--save", "", "--appendonly", "yes" if persistent else "no"]
            command += ["--appendfsync", "always"]
            command += ["--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"]
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.01)

        def kill(self) -> None:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)

    server = Server()
    server.start()
    try:
        yield server
    finally:
        reset()  # this process's clients and brokers of the server go with it
        if server.proc is not None and server.proc.poll() is None:
            server.kill()


@pytest.mark.slow
@pytest.mark.parametrize("persistent", [True, False], ids=["aof", "no-persistence"])
def test_a_redis_restart_loses_nothing(
    persistent: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an append-only file, nothing is lost. Without persistence, a restarted Redis has
    lost everything it held (runs queued, leased, their records): "nothing lost" is then what
    is honest to ask: the runs delayed while it was down and after it came back all complete,
    the worker serving them after the restart as before it."""
    log, journal_path = tmp_path / "bodies.log", tmp_path / "journal.db"
    with redis_server(tmp_path / "redis", persistent) as server:
        monkeypatch.setenv("ACTORFLOW_BROKER_URL", server.url)
        monkeypatch.setenv("ACTORFLOW_QUEUE_NAMESPACE", f"test-{uuid.uuid4().hex}")
        monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "1.0")
        monkeypatch.setenv("ACTORFLOW_QUEUE_SEND_TIMEOUT", "30")
        worker = start_worker("square", journal_path, tmp_path / "worker.err")
        try:
            futures = [rq.square.delay(i, str(log)) for i in range(300)]
            wait_until(lambda: len(lines(log)) >= 100, 60, "the worker to run bodies")
            server.kill()  # mid-stream: runs queued, leased, running and being acknowledged
            killed_at = time.monotonic()
            slowest = 0.0
            while time.monotonic() - killed_at < 1.5:  # producing while Redis is down
                began = time.monotonic()
                futures.append(rq.square.delay(len(futures), str(log)))
                slowest = max(slowest, time.monotonic() - began)
                time.sleep(0.01)
            down = len(futures) - 300
            server.start()
            restarted = time.monotonic()
            futures += [rq.square.delay(len(futures) + i, str(log)) for i in range(100)]
            kept = futures if persistent else futures[300:]
            results = [f.result(timeout=60) for f in kept]
            recovered = time.monotonic() - restarted
        finally:
            stop(worker)
        n = len(futures)
        bodies = Counter(int(line.split()[0]) for line in lines(log))
        print(
            f"{n} runs ({down} delayed while Redis was down, slowest .delay() {slowest * 1e3:.1f}"
            f" ms); all results {recovered:.2f}s after the restart; bodies completed "
            f"{sum(bodies.values())} ({sum(bodies.values()) - len(bodies)} re-executed)"
        )
        first = n - len(kept)
        assert results == [i * i for i in range(first, n)]
        assert set(range(first, n)) <= set(bodies)
        if persistent:
            assert set(bodies) == set(range(n))
        else:  # what Redis held at the kill is gone: its runs read Scheduled, unknown to it
            assert any(f.state.name == "Scheduled" for f in futures[:first])
        assert slowest < 0.25  # .delay() never waits for the broker
        assert worker.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["killed", "stopped"])
def test_delay_fails_clearly_within_the_bound_while_redis_stays_down(
    outage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed: connections are refused. Stopped (SIGSTOP): commands hang, as in a network
    partition; each wait on the server is bounded by the command timeout (here 2 s)."""
    with redis_server(tmp_path / "redis") as server:
        monkeypatch.setenv("ACTORFLOW_BROKER_URL", server.url)
        monkeypatch.setenv("ACTORFLOW_QUEUE_NAMESPACE", f"test-{uuid.uuid4().hex}")
        monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "1.0")
        monkeypatch.setenv("ACTORFLOW_QUEUE_SEND_TIMEOUT", "1.0")
        assert rq.square.delay(0, str(tmp_path / "log")).state.name == "Scheduled"  # connected
        assert server.proc is not None
        if outage == "killed":
            server.kill()
        else:
            server.proc.send_signal(signal.SIGSTOP)
        began = time.monotonic()
        future = rq.square.delay(1, str(tmp_path / "log"))
        assert time.monotonic() - began < 0.25  # .delay() itself never waits
        with pytest.raises(BrokerUnavailable) as raised:
            future.result(timeout=60)
        waited = time.monotonic() - began
        message = str(raised.value)
        url = server.url
        assert future._id in message and url in message
        assert "within 1 s (ACTORFLOW_QUEUE_SEND_TIMEOUT)" in message
        print(f"{outage}: the future failed {waited:.2f}s after .delay(): {message}")
        # The send timeout; for a server that does not answer, plus at most two command
        # timeouts (2 s here): the attempt under way at the .delay(), then the one with it.
        assert 1.0 <= waited < (2.0 if outage == "killed" else 5.5)
        began = time.monotonic()
        with pytest.raises(
            BrokerUnavailable, match="cannot be read from the broker at " + re.escape(url)
        ):
            BackgroundTaskFuture(future.task_run_id).state  # noqa: B018  # the read raises
        assert time.monotonic() - began < 2.5  # one command timeout at most
        if outage == "stopped":
            server.proc.send_signal(signal.SIGCONT)


@pytest.mark.slow
def test_a_worker_waiting_on_upstream_runs_outlives_a_redis_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker holding a run whose upstream run is not final polls the broker: a restart
    meanwhile must not stop the worker, and the run completes once its upstream does."""
    log, journal_path = tmp_path / "bodies.log", tmp_path / "journal.db"
    with redis_server(tmp_path / "redis") as server:
        monkeypatch.setenv("ACTORFLOW_BROKER_URL", server.url)
        monkeypatch.setenv("ACTORFLOW_QUEUE_NAMESPACE", f"test-{uuid.uuid4().hex}")
        monkeypatch.setenv("ACTORFLOW_QUEUE_LEASE", "1.0")
        upstream = rq.whose.delay(str(log), 0.0)  # served by nobody yet
        downstream = rq.square.apply_async((7, str(log)), wait_for=[upstream])
        err = tmp_path / "worker.err"
        worker = start_worker("square", journal_path, err)
        helper = None
        try:
            wait_until(lambda: downstream.state.name == "Pending", 60, "the run to be claimed")
            server.kill()
            time.sleep(0.5)  # the worker polls the upstream run's record meanwhile
            server.start()
            assert worker.poll() is None, err.read_text()
            helper = start_worker("whose", journal_path, tmp_path / "helper.err")
            assert downstream.result(timeout=60) == 49
            assert upstream.result(timeout=5) == helper.pid
        finally:
            stop(worker)
            if helper is not None:
                stop(helper)
        assert worker.returncode == 0
