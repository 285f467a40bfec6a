"""The process-wide state of actorflow, held by one :class:`Runtime` object.

Some state is process-wide by nature: the runtime event loop (on a thread of its own, for the
async needs of sync code), the pool for sync work that has no flow, the cache of worker threads,
run ids, and the registries of the layers above the core (records kept in memory, storages by
name). It all lives here, so that one fork hook makes a forked child start afresh (none of its
parent's threads exist there, and a lock one of them held would never be released) and one
:meth:`Runtime.reset` gives tests a clean process.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, final

from ._pool import WorkerPool, forget_threads_after_fork, shared_threads
from ._spawn import Loop, current_loop

if TYPE_CHECKING:
    import asyncio

__all__ = ["Runtime", "RuntimeLoop", "new_id", "runtime"]

T = TypeVar("T")

# Run ids: a random 64-bit prefix per process and a counter. Unique across processes without the
# cost of uuid4 per run; formatted as a UUID only when asked for. Module globals, read on the hot
# path; the runtime renews them in a forked child.
_prefix = int.from_bytes(os.urandom(8)) << 64
_counter = itertools.count(1)


def new_id() -> int:
    """A new 128-bit run id."""
    return _prefix | next(_counter)


@final
class RuntimeLoop:
    """An asyncio loop running on a thread of its own."""

    def __init__(self, name: str = "actorflow-runtime") -> None:
        self._ready = threading.Event()
        self._stopped = concurrent.futures.Future[None]()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handle: Loop | None = None
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
        import asyncio  # here: a script that never runs async code does not load it

        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)

        async def capture() -> None:
            self.handle = current_loop()

        loop.run_until_complete(capture())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set_result(None)

    def on_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def stop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            if threading.current_thread() is not self.thread:
                self._stopped.result(timeout=5)


@final
class Runtime:
    """The one object holding actorflow's process-wide state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: RuntimeLoop | None = None
        self._default_pool: WorkerPool | None = None
        #: Worker threads shared by every pool of the process.
        self.threads = shared_threads
        self._slots: dict[str, Any] = {}
        self._fork_hooks: list[Callable[[], None]] = []

    # -- the runtime loop -----------------------------------------------------------------------
    def loop(self) -> RuntimeLoop:
        """The runtime event loop, started on first use and stopped at interpreter exit."""
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._loop is None:
                    self._loop = RuntimeLoop()
                loop = self._loop
        return loop

    def on_loop_thread(self) -> bool:
        loop = self._loop
        return loop is not None and loop.on_thread()

    # -- threads --------------------------------------------------------------------------------
    def new_pool(self, max_workers: int, name: str) -> WorkerPool:
        """A bounded pool on the shared threads."""
        return WorkerPool(max_workers, name=name, threads=self.threads)

    def default_pool(self) -> WorkerPool:
        """The pool for sync work that has no flow (direct calls with a timeout, hooks, I/O)."""
        pool = self._default_pool
        if pool is None:
            with self._lock:
                if self._default_pool is None:
                    self._default_pool = self.new_pool(32, "actorflow-default")
                pool = self._default_pool
        return pool

    # -- registries of the layers above the core ------------------------------------------------
    def slot(self, name: str, factory: Callable[[], T]) -> T:
        """The process-wide object registered as ``name``, made by ``factory`` on first use.
        A forked child and :meth:`reset` start without it."""
        try:
            value: T = self._slots[name]
            return value
        except KeyError:
            with self._lock:
                if name not in self._slots:
                    self._slots[name] = factory()
                value = self._slots[name]
            return value

    def at_fork(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` in a forked child, after the runtime itself has started afresh."""
        self._fork_hooks.append(hook)

    # -- starting afresh ------------------------------------------------------------------------
    def after_fork(self) -> None:
        """In a forked child: none of the parent's threads exist, and a lock one of them held
        would never be released. Everything is made anew, lazily, as on a first start."""
        global _prefix, _counter
        _prefix = int.from_bytes(os.urandom(8)) << 64
        _counter = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = None
        self._default_pool = None
        forget_threads_after_fork()
        self._slots = {}
        for hook in self._fork_hooks:
            hook()

    def reset(self) -> None:
        """Stop the runtime loop and the default pool and forget every registry (for tests)."""
        with self._lock:
            loop, self._loop = self._loop, None
            pool, self._default_pool = self._default_pool, None
            self._slots = {}
        if pool is not None:
            pool.shutdown(wait=True)
        if loop is not None:
            loop.stop()

    def close(self, timeout: float) -> list[str]:
        """Stop everything the runtime started, as a service does when it stops: the default
        pool (refusing new work), the runtime loop and every worker thread, waiting up to
        ``timeout`` seconds for threads still running a body. The names of those still busy
        then (Python cannot stop a thread). Unlike :meth:`reset`, registries are kept; whatever
        is needed again is started again on first use."""
        with self._lock:
            loop, self._loop = self._loop, None
            pool, self._default_pool = self._default_pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        if loop is not None:
            loop.stop()
        return self.threads.drain(timeout)

    def shutdown(self) -> None:
        """At interpreter exit: stop the runtime loop."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()


runtime = Runtime()
atexit.register(runtime.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=runtime.after_fork)
