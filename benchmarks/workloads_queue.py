"""Background runs end to end: ``.delay()`` -> one worker process -> recorded result.

For each broker (the SQLite default, Redis on loopback) a worker process (``actorflow worker``)
serves a trivial task; this process produces the runs and waits for their outcomes:

- ``throughput(n)``: ``n`` runs queued with ``.delay()`` one by one, until every outcome is
  recorded (the futures' ``wait``); the seconds taken.
- ``latencies(n)``: ``n`` runs one after another on an idle worker, each from ``.delay()`` to
  its final state read back; the latencies in seconds.

In the harness (``python -m benchmarks -w queue -w queue-latency``) the workloads are
``queue`` (``n`` runs delayed, then every result read back) and ``queue-latency`` (``n`` runs one
at a time; per item, the mean latency). Run ``python -m benchmarks.workloads_queue [n] [samples]``
for a table with throughput and p50/p99 latency per broker.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("ACTORFLOW_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BROKERS = ("sqlite", "redis")
#: Runs in flight in the worker: enough that claims and writes go in batches.
LIMIT = 1000


def redis_missing() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis is not installed (the redis extra)"
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        return f"no Redis at {REDIS_URL}: {exc}"
    return None


class QueueBench:
    """One broker, configured in this process's environment, with a worker process serving."""

    def __init__(self, kind: str, limit: int = LIMIT) -> None:
        self.kind = kind
        self.home = tempfile.mkdtemp(prefix="actorflow-bench-queue-")
        self._saved = {
            k: os.environ.get(k)
            for k in ("ACTORFLOW_HOME", "ACTORFLOW_BROKER_URL", "ACTORFLOW_QUEUE_NAMESPACE")
        }
        self.namespace = f"bench-{uuid.uuid4().hex[:12]}"
        os.environ["ACTORFLOW_HOME"] = self.home
        os.environ["ACTORFLOW_QUEUE_NAMESPACE"] = self.namespace
        if kind == "redis":
            os.environ["ACTORFLOW_BROKER_URL"] = REDIS_URL
        else:
            os.environ.pop("ACTORFLOW_BROKER_URL", None)
        from benchmarks._queue_tasks import inc

        self.task = inc
        env = dict(os.environ, ACTORFLOW_LOGGING_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "actorflow", "worker", "benchmarks._queue_tasks:inc"]
        self.worker = subprocess.Popen(
            [*command, "--limit", str(limit), *os.environ.get("BENCH_WORKER_ARGS", "").split()],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        # Ready when it has run one.
        assert self.task.delay(0).result(timeout=60) == 1

    def results(self, xs: list[int]) -> list[int]:
        """Delay one run per item, then read every result back (the harness's ``queue``)."""
        delay = self.task.delay
        futures = [delay(x) for x in xs]
        return [future.result() for future in futures]

    def one_by_one(self, xs: list[int]) -> list[int]:
        """One run at a time, each from ``.delay()`` to its result (``queue-latency``)."""
        delay = self.task.delay
        return [delay(x).result() for x in xs]

    def throughput(self, n: int) -> float:
        delay = self.task.delay
        start = time.perf_counter()
        futures = [delay(i) for i in range(n)]
        for future in futures:
            future.wait()
        elapsed = time.perf_counter() - start
        self._check(futures)
        return elapsed

    def throughput_map(self, n: int) -> float:
        start = time.perf_counter()
        futures = self.task.map(range(n), deferred=True)
        for future in futures:
            future.wait()
        elapsed = time.perf_counter() - start
        self._check(futures)
        return elapsed

    def _check(self, futures: list[Any]) -> None:
        from actorflow._queue import broker

        records = broker().read([f._id for f in futures])
        assert all(r is not None and r.final and r.type == "COMPLETED" for r in records)

    def latencies(self, n: int) -> list[float]:
        delay = self.task.delay
        out = []
        for i in range(n):
            start = time.perf_counter()
            state = delay(i)
            state.wait()
            final = state.state
            out.append(time.perf_counter() - start)
            assert final.is_completed()
        return out

    def close(self) -> None:
        from actorflow._queue import reset

        self.worker.terminate()
        self.worker.wait(30)
        reset()
        if self.kind == "redis":
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=f"af:{{{self.namespace}}}:*", count=1000))
            for start in range(0, len(keys), 1000):
                r.delete(*keys[start : start + 1000])
            r.close()
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.home, ignore_errors=True)


#: The job queues compared, each a module of ``benchmarks.queue_peers`` (the bench-queue extra).
PEERS = {"dramatiq": "dramatiq", "taskiq": "taskiq_redis", "celery": "celery", "arq": "arq"}


def peer_missing(peer: str) -> str | None:
    import importlib.util

    package = PEERS[peer]
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed (pip install -e '.[bench-queue]')"
    return redis_missing()


class PeerBench:
    """One job queue on the same Redis, its worker process serving the same trivial task."""

    def __init__(self, peer: str) -> None:
        import importlib

        self.kind = peer
        self.namespace = f"bench-{uuid.uuid4().hex[:12]}"
        os.environ["BENCH_REDIS_URL"] = REDIS_URL
        os.environ["BENCH_QUEUE_NS"] = self.namespace
        self.app: Any = importlib.import_module(f"benchmarks.queue_peers.{peer}_app")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.worker = subprocess.Popen(
            [sys.executable, "-m", *self.app.WORKER],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert self.app.results([0]) == [1]  # ready

    def results(self, xs: list[int]) -> list[int]:
        return list(self.app.results(xs))

    def one_by_one(self, xs: list[int]) -> list[int]:
        return list(self.app.one_by_one(xs))

    def close(self) -> None:
        self.worker.terminate()
        try:
            self.worker.wait(15)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait(15)
        import redis

        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(match=f"*{self.namespace}*", count=1000))
        for start in range(0, len(keys), 1000):
            r.delete(*keys[start : start + 1000])
        r.close()


_benches: dict[str, QueueBench | PeerBench] = {}


def bench_for(kind: str) -> QueueBench | PeerBench:
    """The bench of a broker or peer (its worker process started on first use; see
    :func:`close_benches`)."""
    bench = _benches.get(kind)
    if bench is None:
        bench = _benches[kind] = PeerBench(kind) if kind in PEERS else QueueBench(kind)
    return bench


def close_benches() -> None:
    while _benches:
        _benches.popitem()[1].close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 10_000
    samples = int(argv[1]) if len(argv) > 1 else 500
    print(f"| queue | runs/s ({n:,} queued, results read) | runs/s (map deferred) | p50 | p99 |")
    print("|---|---|---|---|---|")
    for kind in BROKERS:
        if kind == "redis" and redis_missing():
            print(f"| {kind} | {redis_missing()} | | | |")
            continue
        bench = QueueBench(kind)
        try:
            rate = n / bench.throughput(n)
            rate_map = n / bench.throughput_map(n)
            lat = bench.latencies(samples)
        finally:
            bench.close()
        print(
            f"| actorflow/{kind} | {rate:,.0f} | {rate_map:,.0f} | "
            f"{statistics.median(lat) * 1e3:.2f} ms | {percentile(lat, 0.99) * 1e3:.2f} ms |"
        )
    for peer in PEERS:
        reason = peer_missing(peer)
        if reason:
            print(f"| {peer} | {reason} | | | |")
            continue
        peer_bench = PeerBench(peer)
        try:
            xs = list(range(n))
            start = time.perf_counter()
            assert peer_bench.results(xs) == [x + 1 for x in xs]
            rate = n / (time.perf_counter() - start)
            lat = []
            for x in range(samples):
                start = time.perf_counter()
                peer_bench.one_by_one([x])
                lat.append(time.perf_counter() - start)
        finally:
            peer_bench.close()
        print(
            f"| {peer} | {rate:,.0f} | | {statistics.median(lat) * 1e3:.2f} ms | "
            f"{percentile(lat, 0.99) * 1e3:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
