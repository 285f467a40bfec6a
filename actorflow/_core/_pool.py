"""A bounded worker-thread pool whose blocked workers give their slot away.

A task body that submits children and waits on them would deadlock a plain bounded pool once every
worker is waiting. Here a worker that blocks on a run (``future.result()``, ``wait()``) *secedes*:
it hands its slot to queued work for as long as it waits and takes it back afterwards. The number
of threads stays bounded by ``max_workers`` plus the workers blocked at that moment, and the number
of bodies running at once by ``max_workers``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, final

import attrs

_local = threading.local()


@attrs.frozen
class PoolStatistics:
    max_workers: int
    threads: int
    running: int
    seceded: int
    idle: int
    queued: int


@final
class WorkerPool:
    """Runs ``fn(*args)`` work items on at most ``max_workers`` busy threads.

    Threads start on demand and exit after ``idle_timeout`` seconds without work, so an idle pool
    holds no threads. :meth:`shutdown` waits for the threads to finish.
    """

    def __init__(self, max_workers: int, name: str = "actorflow", idle_timeout: float = 2.0):
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._name = name
        self._idle_timeout = idle_timeout
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...]]] = (
            deque()
        )
        self._threads: set[threading.Thread] = set()
        self._running = 0  # threads holding a slot
        self._seceded = 0
        self._idle = 0
        self._closed = False
        self._counter = 0

    def statistics(self) -> PoolStatistics:
        with self._cond:
            return PoolStatistics(
                self.max_workers,
                len(self._threads),
                self._running,
                self._seceded,
                self._idle,
                len(self._queue),
            )

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; it runs in a copy of the caller's context."""
        ctx = contextvars.copy_context()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the worker pool {self._name!r} is shut down")
            self._queue.append((ctx, fn, args))
            self._wake()

    def _wake(self) -> None:
        # Called with the lock held: make sure someone will pick up queued work if a slot is free.
        if self._running >= self.max_workers or not self._queue:
            return
        if self._idle:
            # A woken worker that leaves more work queued wakes the next one in turn.
            self._cond.notify()
            return
        if len(self._threads) - self._seceded < self.max_workers:
            self._counter += 1
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{self._counter}", daemon=True
            )
            self._threads.add(thread)
            thread.start()

    def _work(self) -> None:
        _local.pool = self
        me = threading.current_thread()
        cond = self._cond
        while True:
            with cond:
                while not self._queue or self._running >= self.max_workers:
                    if self._closed and not self._queue:
                        self._threads.discard(me)
                        cond.notify_all()
                        return
                    self._idle += 1
                    woke = cond.wait(self._idle_timeout)
                    self._idle -= 1
                    if not woke and not self._queue:
                        # Idle exit: no one needs waking (waking the others would restart
                        # their idle timers, and shutdown joins threads instead).
                        self._threads.discard(me)
                        return
                ctx, fn, args = self._queue.popleft()
                self._running += 1
                if self._queue:
                    self._wake()
            try:
                ctx.run(fn, *args)
            finally:
                with cond:
                    self._running -= 1

    def secede(self) -> None:
        """Give up this worker's slot while it blocks; queued work may start in its place."""
        with self._cond:
            self._running -= 1
            self._seceded += 1
            self._wake()

    def rejoin(self) -> None:
        """Take a slot back after :meth:`secede`. The pool may briefly run one body too many."""
        with self._cond:
            self._seceded -= 1
            self._running += 1

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; with ``wait``, run what is queued and join every thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            me = threading.current_thread()
            for thread in threads:
                if thread is not me:
                    thread.join()


def current_pool() -> WorkerPool | None:
    """The pool whose worker thread is running this code, if any."""
    return getattr(_local, "pool", None)


@contextlib.contextmanager
def blocking_region() -> Iterator[None]:
    """Mark a blocking wait: a pool worker secedes for its duration, so nested waits cannot
    starve the pool."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        yield
        return
    pool.secede()
    try:
        yield
    finally:
        pool.rejoin()
