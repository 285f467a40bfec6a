"""``ProcessPoolTaskRunner``: sync task bodies in a pool of worker processes.

Workers are started with the ``spawn`` method. ``fork`` would copy a process that runs threads
(the runtime loop, coordinator and pool threads) and may deadlock on a lock held at the moment of
the fork; ``spawn`` starts clean interpreters on every platform. Like any spawning pool, a script
that uses this runner needs an ``if __name__ == "__main__":`` guard, because each worker imports
the main module.

Functions and arguments cross to the workers by pickle (cloudpickle, when installed, for what
plain pickle cannot do, such as lambdas and functions defined in ``__main__``). An argument that
cannot be pickled fails its run with a ``TypeError`` naming the argument; retries apply as to any
failure. A task's timeout is measured from when its body starts in the worker: at the deadline
the run is TimedOut and the body is stopped at its next Python instruction (a blocking call
finishes first, in the background, and its result is dropped); the worker process is not killed.

A worker process that dies takes the pool down with it (``BrokenProcessPool``): every run whose
body was in the pool at that moment ends Crashed, or is retried if it has retries left, on a new
pool.

The pool is kept fed with two work items per worker; bodies submitted beyond that wait here. When
bodies are short (a few milliseconds, as measured in the workers), several waiting bodies travel
in one work item, up to about 20 ms of work, so that the pool's own per-item cost (pickling, pipes,
its manager thread) is shared. Each body still has its own outcome, timeout and state.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import attrs

from .._core import TaskRun
from ._body import run_bodies
from ._remote import Done, Payload, RemoteTaskRunner

#: Work items kept in the pool per worker process.
ITEMS_PER_WORKER = 2
#: Bodies per work item at most, and the work (by measured body time) one item may carry.
MAX_BATCH = 64
BATCH_SECONDS = 0.02

Answers = list[tuple[int, bytes, float]]


@attrs.frozen
class ProcessRunnerStatistics:
    max_workers: int
    queued: int
    items_in_pool: int
    bodies_sent: int
    items_sent: int
    pools_started: int


class ProcessPoolTaskRunner(RemoteTaskRunner):
    """Runs sync task bodies in worker processes; the runs themselves stay in the flow's
    process, so states, retries, caching and futures between tasks behave as with threads."""

    name = "processes"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        super().__init__()
        self.max_workers = max_workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []
        self._lock = threading.Lock()
        #: Bodies beyond what the pool is fed, with their runs (a cancelled one never ships).
        self._outbox: deque[tuple[TaskRun, Payload, Done]] = deque()
        self._items = 0  # work items in the pool
        self._body_seconds = 1.0  # a running mean of body time; no batching until measured
        self._bodies_sent = 0
        self._items_sent = 0
        self._pools_started = 0

    def duplicate(self) -> ProcessPoolTaskRunner:
        return type(self)(self.max_workers)

    def statistics(self) -> ProcessRunnerStatistics:
        with self._lock:
            return ProcessRunnerStatistics(
                max_workers=self.max_workers,
                queued=len(self._outbox),
                items_in_pool=self._items,
                bodies_sent=self._bodies_sent,
                items_sent=self._items_sent,
                pools_started=self._pools_started,
            )

    def _new_executor(self) -> ProcessPoolExecutor:
        self._pools_started += 1
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.max_workers, mp_context=context)

    def _open(self) -> None:
        self._executor = self._new_executor()

    def _ship(self, run: TaskRun, payload: Payload, done: Done) -> None:
        with self._lock:
            if self._items >= ITEMS_PER_WORKER * self.max_workers:
                self._outbox.append((run, payload, done))
                return
            self._items += 1
        self._send([(payload, done)])

    def _send(self, batch: list[tuple[Payload, Done]]) -> None:
        payloads = [payload for payload, _ in batch]
        dones = [done for _, done in batch]
        try:
            with self._lock:
                executor = self._executor
                if executor is None:
                    raise RuntimeError("Task runner is not started")
                self._bodies_sent += len(batch)
                self._items_sent += 1
                try:
                    future = executor.submit(run_bodies, payloads)
                except BrokenProcessPool:
                    # A worker died earlier: the pool is unusable. Start a new one.
                    self._retired.append(executor)
                    executor.shutdown(wait=False, cancel_futures=True)
                    executor = self._executor = self._new_executor()
                    future = executor.submit(run_bodies, payloads)
        except Exception as exc:
            self._item_done(None, dones, exc)
            return
        pool = self._pool
        assert pool is not None
        # The callback runs on the executor's own thread: hand over at once.
        future.add_done_callback(lambda f: pool.submit(self._item_done, f, dones, None))

    def _item_done(
        self, future: Future[Answers] | None, dones: list[Done], error: Exception | None
    ) -> None:
        # Feed the pool before completing runs, so that workers do not wait on us.
        with self._lock:
            self._items -= 1
        self._feed()
        if future is not None:
            try:
                answers = future.result()
            except BrokenProcessPool as exc:
                error, what = exc, "the worker process running its body died"
            except CancelledError as exc:
                error, what = exc, "its body was cancelled in the process pool"
            except Exception as exc:
                error, what = exc, "the process pool could not run its body"
            else:
                seconds = sum(answer[2] for answer in answers) / len(answers)
                self._body_seconds = 0.8 * self._body_seconds + 0.2 * seconds
                for (code, data, _), done in zip(answers, dones, strict=True):
                    self.complete_here(done, code, data)
                return
        else:
            what = "the process pool refused its body"
        for done in dones:
            self.crash(done, what, error)

    def _feed(self) -> None:
        """Send waiting bodies while the pool has room for more items; the body of a run
        cancelled while it waited is not sent (the run ends Cancelled)."""
        outbox = self._outbox
        while True:
            with self._lock:
                if not outbox or self._items >= ITEMS_PER_WORKER * self.max_workers:
                    return
                size = self._batch_size(len(outbox))
                batch = [outbox.popleft() for _ in range(size)]
                self._items += 1
            live = [
                (payload, done) for run, payload, done in batch if not self.withdrawn(run, done)
            ]
            if live:
                self._send(live)
            else:
                with self._lock:
                    self._items -= 1

    def _batch_size(self, waiting: int) -> int:
        # Share the waiting bodies among the workers, and keep an item to about BATCH_SECONDS.
        by_time = int(BATCH_SECONDS / max(self._body_seconds, 1e-6))
        share = -(-waiting // self.max_workers)
        return max(1, min(MAX_BATCH, by_time, share, waiting))

    def _close(self, wait: bool) -> None:
        with self._lock:
            executors = [*self._retired, *([self._executor] if self._executor else [])]
            self._executor = None
            self._retired = []
        for executor in executors:
            executor.shutdown(wait=wait, cancel_futures=not wait)

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers})"
