"""Bounded worker pools whose blocked workers give their slot away, on threads shared by all.

A task body that submits children and waits on them would deadlock a plain bounded pool once every
worker is waiting. Here a worker that blocks on a run (``future.result()``, ``wait()``) *secedes*:
it hands its slot to queued work for as long as it waits and takes it back afterwards. The number
of threads a pool uses stays bounded by ``max_workers`` plus its workers blocked at that moment,
and the number of bodies running at once by ``max_workers``.

Each flow run has a pool of its own (its limits, its queue), but threads are not started and
joined per pool: a pool borrows threads from one process-wide :class:`ThreadCache` while it has
queued work, and a thread goes back to the cache when its pool's queue is empty. A cached thread
that stays idle for ``idle_timeout`` seconds exits, so an idle process holds no threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    from ._statistics import PoolStatistics, ThreadCacheStatistics

_local = threading.local()
logger = logging.getLogger("actorflow")
# Every cache and pool, weakly, so that the runtime's fork hook can make them forget the threads
# of the parent (see forget_threads_after_fork).
_caches: weakref.WeakSet[ThreadCache] = weakref.WeakSet()
_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


#: A queued work item: ``[context, fn or None once taken, args, pool]``. A list, so that
#: taking it (a worker popping it, or one stealing it) is one store under the pool's lock.
WorkItem = list[Any]


@final
class _Parked:
    """An idle thread of the cache, waiting to be handed a work loop."""

    __slots__ = ("gate", "loop")

    def __init__(self) -> None:
        self.gate = threading.Lock()
        self.gate.acquire()  # released by the hand-off
        self.loop: Callable[[], None] | None = None


def _exit() -> None:
    """Handed to a parked thread to make it exit (see :meth:`ThreadCache.drain`)."""


@final
class ThreadCache:
    """Threads shared by every :class:`WorkerPool` of the process.

    :meth:`run` hands a pool's work loop to an idle thread, or starts one. When the loop returns,
    the thread parks; after ``idle_timeout`` seconds parked, it exits.
    """

    def __init__(self, idle_timeout: float = 2.0, name: str = "actorflow-idle") -> None:
        self.idle_timeout = idle_timeout
        self._name = name
        self._counter = 0
        self.forget_threads()
        _caches.add(self)

    def forget_threads(self) -> None:
        # Also the state of a forked child, where none of the parent's threads exist.
        self._lock = threading.Lock()
        self._gone = threading.Condition(self._lock)  # notified when a thread exits
        self._parked: list[_Parked] = []
        self._threads = 0
        self._live: set[threading.Thread] = set()
        self._draining = 0  # drain() calls in progress: threads exit instead of parking
        # Threads still busy when a drain gave up on them: they exit when done, not park.
        self._stragglers: set[threading.Thread] = set()

    def statistics(self) -> ThreadCacheStatistics:
        from ._statistics import ThreadCacheStatistics

        with self._lock:
            return ThreadCacheStatistics(self._threads, len(self._parked))

    def run(self, loop: Callable[[], None]) -> None:
        """Run ``loop()`` on a cached thread (the most recently parked one), or a new thread."""
        with self._lock:
            if self._parked:
                parked = self._parked.pop()
                parked.loop = loop
                parked.gate.release()
                return
            self._threads += 1
            self._counter += 1
            name = f"{self._name}-{self._counter}"
        thread = threading.Thread(target=self._main, args=(loop,), name=name, daemon=True)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._threads -= 1
            raise

    def _main(self, loop: Callable[[], None]) -> None:
        parked = _Parked()
        me = threading.current_thread()
        idle_name = me.name
        with self._lock:
            self._live.add(me)
        while True:
            try:
                loop()
            except BaseException:  # a work loop handles its items' errors; this is a bug
                logger.exception("a worker thread's loop raised")
            me.name = idle_name
            with self._lock:
                if self._draining or me in self._stragglers:
                    self._left()
                    return
                parked.loop = None
                self._parked.append(parked)
            if not parked.gate.acquire(timeout=self.idle_timeout):
                with self._lock:
                    if parked in self._parked:  # nobody came: exit
                        self._parked.remove(parked)
                        self._left()
                        return
                parked.gate.acquire()  # taken just as the wait ended: the hand-off is coming
            assert parked.loop is not None
            if parked.loop is _exit:
                with self._lock:
                    self._left()
                return
            loop = parked.loop

    def _left(self) -> None:
        # With the lock held: this thread exits.
        self._threads -= 1
        me = threading.current_thread()
        self._live.discard(me)
        self._stragglers.discard(me)
        self._gone.notify_all()

    def drain(self, timeout: float) -> list[str]:
        """Make the cache's threads exit: parked ones now, busy ones as soon as their work is
        done; wait up to ``timeout`` seconds for them. The names of the threads still busy then
        (Python cannot stop a thread). The cache goes on serving: threads are started again on
        demand."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._draining += 1
            try:
                for parked in self._parked:
                    parked.loop = _exit
                    parked.gate.release()
                self._parked.clear()
                while self._threads:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._gone.wait(remaining)
                busy = sorted(t.name for t in self._live)
                self._stragglers |= self._live
            finally:
                self._draining -= 1
        return busy


#: The threads every pool shares unless it is given its own (the runtime's ``threads``).
shared_threads = ThreadCache()


def forget_threads_after_fork() -> None:
    """In a forked child, where none of the parent's threads exist: every cache and pool
    starts afresh (called by the runtime's fork hook)."""
    for cache in list(_caches):
        cache.forget_threads()
    for pool in list(_pools):
        pool.forget_threads()


@final
class WorkerPool:
    """Runs ``fn(*args)`` work items on at most ``max_workers`` busy threads.

    The threads come from ``threads`` (the runtime's shared :class:`ThreadCache` by default)
    while there is work queued, and go back to it when there is none. :meth:`shutdown` waits for
    the queued and running work to finish.
    """

    def __init__(
        self,
        max_workers: int,
        name: str = "actorflow",
        idle_timeout: float | None = None,
        threads: ThreadCache | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._name = name
        if threads is None:
            threads = shared_threads if idle_timeout is None else ThreadCache(idle_timeout, name)
        self._threads = threads
        self._closed = False
        self.forget_threads()
        _pools.add(self)

    def forget_threads(self) -> None:
        # Also the state of a forked child: the parent's workers, and its queued work, are not
        # this process's.
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[WorkItem] = deque()
        self._workers = 0  # threads in this pool's work loop
        self._running = 0  # of those, the ones holding a slot
        self._seceded = 0

    def statistics(self) -> PoolStatistics:
        from ._statistics import PoolStatistics

        with self._cond:
            return PoolStatistics(
                self.max_workers, self._workers, self._running, self._seceded, len(self._queue)
            )

    def submit(self, fn: Callable[..., Any], *args: Any) -> WorkItem:
        """Queue ``fn(*args)``; it runs in a copy of the caller's context. The returned item can
        be handed to :meth:`steal` by a worker of this pool that is about to wait for it.

        Raises if no thread can be found for it (a thread that cannot be started) while the
        pool has none at work; the item is not kept then.
        """
        item: WorkItem = [contextvars.copy_context(), fn, args, self]
        with self._cond:
            if self._closed:
                raise RuntimeError(f"the worker pool {self._name!r} is shut down")
            self._queue.append(item)
            error = self._wake()
            if error is not None and not self._workers:
                self._queue.remove(item)
                raise error
        return item

    def steal(self, item: WorkItem) -> bool:
        """Run a queued item of this pool here and now, on the calling worker, which was about
        to block waiting for it (work stealing: the wait costs no thread hand-off, and a pool of
        one worker cannot deadlock on it). ``False`` if the item is not this pool's or another
        worker already took it."""
        with self._cond:
            fn = item[1]
            if fn is None or item[3] is not self:
                return False
            item[1] = None  # taken: the worker that pops it skips it
        item[0].run(fn, *item[2])
        return True

    def _wake(self) -> BaseException | None:
        # Called with the lock held: make sure a thread will take queued work if a slot is free.
        # Workers take items until the queue is empty, so one more thread is needed only while
        # fewer than ``max_workers`` are at work (seceded ones do not count). A thread that
        # cannot be started is returned, not raised: the workers already at work take the queue.
        if self._running >= self.max_workers or not self._queue:
            return None
        if self._workers - self._seceded < min(self.max_workers, len(self._queue) + self._running):
            self._workers += 1
            try:
                self._threads.run(self._work)
            except Exception as exc:
                self._workers -= 1
                logger.warning("pool %r could not start a thread: %s", self._name, exc)
                return exc
        return None

    def _work(self) -> None:
        _local.pool = self
        threading.current_thread().name = self._name  # while it works for this pool
        cond = self._cond
        try:
            while True:
                with cond:
                    if not self._queue or self._running >= self.max_workers:
                        # Nothing this thread may take now: back to the cache. Whoever frees a
                        # slot or queues work finds a thread then.
                        self._workers -= 1
                        if self._closed:  # shutdown() may be waiting, from a worker too
                            cond.notify_all()
                        return
                    ctx, fn, args, _ = item = self._queue.popleft()
                    if fn is None:  # stolen by a worker that waited for it
                        continue
                    item[1] = None
                    self._running += 1
                    if self._queue:
                        self._wake()
                try:
                    ctx.run(fn, *args)
                except BaseException:  # work items are wrapped; this is a bug
                    logger.exception("a work item of pool %r raised", self._name)
                finally:
                    with cond:
                        self._running -= 1
        finally:
            _local.pool = None

    def withdraw(self, match: Callable[[Callable[..., Any], tuple[Any, ...]], bool]) -> list[Any]:
        """Take the queued work items ``match(fn, args)`` accepts out of the queue (they will not
        run); their ``args``."""
        with self._cond:
            kept: deque[WorkItem] = deque()
            taken = []
            for item in self._queue:
                fn = item[1]
                if fn is None:  # stolen: nothing left to run
                    continue
                if match(fn, item[2]):
                    item[1] = None
                    taken.append(item[2])
                else:
                    kept.append(item)
            self._queue = kept
        return taken

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
        """Refuse new work; with ``wait``, wait until the queued and running work is done.

        Called from one of the pool's own workers, it waits for the others only.
        """
        with self._cond:
            self._closed = True
            if not wait:
                return
            own = 1 if getattr(_local, "pool", None) is self else 0
            while self._workers > own or (own == 0 and self._queue):
                if not self._workers and self._wake() is not None and not self._workers:
                    logger.error(
                        "pool %r: no thread can be started; %d queued item(s) dropped",
                        self._name,
                        len(self._queue),
                    )
                    self._queue.clear()
                    break
                self._cond.wait()


#: How long the main thread blocks at a time while it waits: a signal (Ctrl-C) delivered to
#: another thread does not interrupt a blocked wait, so the main thread looks up this often.
SIGNAL_CHECK_SECONDS = 0.1


def wait_event(event: threading.Event, timeout: float | None = None) -> bool:
    """``event.wait(timeout)``, from which Ctrl-C gets the main thread out promptly."""
    if threading.current_thread() is not threading.main_thread():
        return event.wait(timeout)
    if timeout is None:
        while not event.wait(SIGNAL_CHECK_SECONDS):
            pass
        return True
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return event.is_set()
        if event.wait(min(remaining, SIGNAL_CHECK_SECONDS)):
            return True


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
