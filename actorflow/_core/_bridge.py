"""Sync entry points onto the async core.

Sync code (a sync flow, a task body on a worker thread) sometimes needs an event loop: to run an
async task a sync flow submitted, an async hook, or a timer. The runtime keeps one asyncio loop on
a thread of its own for that, started on first use and stopped at interpreter exit. Sync task
bodies run in the :class:`~._pool.WorkerPool` of their flow's runner; outside any flow, in the
process's default pool, whose idle threads exit by themselves.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, final

from ._pool import WorkerPool, blocking_region
from ._spawn import Group, Loop, current_loop, open_group

T = TypeVar("T")


@final
class _RuntimeLoop:
    """An asyncio loop running on its own thread, owned by the process's runtime."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._stopped = concurrent.futures.Future[None]()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handle: Loop | None = None
        self.thread = threading.Thread(target=self._main, name="actorflow-runtime", daemon=True)
        self.thread.start()
        self._ready.wait()

    def _main(self) -> None:
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

    def stop(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            if threading.current_thread() is not self.thread:
                self._stopped.result(timeout=5)


_lock = threading.Lock()
_runtime: _RuntimeLoop | None = None
_pool: WorkerPool | None = None


def runtime_loop() -> _RuntimeLoop:
    """The process's runtime loop, started on first use."""
    global _runtime
    runtime = _runtime
    if runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = _RuntimeLoop()
                atexit.register(_shutdown)
            runtime = _runtime
    return runtime


def default_pool() -> WorkerPool:
    """The pool for sync work that has no flow (direct calls with a timeout, hooks)."""
    global _pool
    pool = _pool
    if pool is None:
        with _lock:
            if _pool is None:
                _pool = WorkerPool(max_workers=32, name="actorflow-default")
            pool = _pool
    return pool


def _shutdown() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.stop()
        _runtime = None


def on_runtime_thread() -> bool:
    runtime = _runtime
    return runtime is not None and threading.current_thread() is runtime.thread


def run_coroutine_sync(coro: Coroutine[Any, Any, T] | Any) -> T:
    """Run ``coro`` to completion and return its result, from sync code.

    It runs on the runtime loop; called *from* the runtime loop's thread (sync code inside an
    async task of a sync flow), on a private loop of its own, since blocking the runtime loop
    on itself would never return.
    """

    async def wrap() -> T:
        return await coro  # type: ignore[no-any-return]

    if on_runtime_thread():
        private = _RuntimeLoop()
        try:
            assert private.loop is not None
            return asyncio.run_coroutine_threadsafe(wrap(), private.loop).result()
        finally:
            private.stop()
    runtime = runtime_loop()
    assert runtime.loop is not None
    future = asyncio.run_coroutine_threadsafe(wrap(), runtime.loop)
    with blocking_region():
        return future.result()


def call_later(seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
    """Call ``fn()`` on the runtime loop after ``seconds``; returns a function that cancels it."""
    runtime = runtime_loop()
    assert runtime.loop is not None
    loop = runtime.loop
    box: list[asyncio.TimerHandle] = []
    cancelled = threading.Event()

    def arm() -> None:
        if not cancelled.is_set():
            box.append(loop.call_later(seconds, fn))

    loop.call_soon_threadsafe(arm)

    def cancel() -> None:
        cancelled.set()

        def disarm() -> None:
            for handle in box:
                handle.cancel()

        if not loop.is_closed():
            loop.call_soon_threadsafe(disarm)

    return cancel


@final
class LoopGroup:
    """A native task group on the runtime loop, for a sync supervisor's async children.

    Spawning is thread-safe. :meth:`close` waits until every child is done; :meth:`cancel`
    cancels them all (the group's own structured cancellation).
    """

    def __init__(self) -> None:
        # From the runtime loop's own thread (a sync flow inside an async task of a sync flow),
        # the group gets a private loop: waiting on the shared one here would never return.
        self._private = _RuntimeLoop() if on_runtime_thread() else None
        runtime = self._private or runtime_loop()
        assert runtime.loop is not None and runtime.handle is not None
        self.loop: Loop = runtime.handle
        self._ready = threading.Event()
        self._group: Group | None = None
        self._closing: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.run_coroutine_threadsafe(self._main(), runtime.loop)
        self._ready.wait()

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        self._closing = asyncio.Event()
        try:
            async with open_group() as group:
                self._group = group
                self._ready.set()
                await self._closing.wait()
        finally:
            self._ready.set()

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        group = self._group
        assert group is not None
        # The child inherits the submitter's context; if that was a trio task, its marker of
        # the running async library must not follow the child onto this asyncio loop.
        context = contextvars.copy_context()
        if "sniffio" in sys.modules:
            # An import statement, not a look in sys.modules: another thread may be importing
            # sniffio right now, and the statement waits until its module is complete.
            import sniffio

            context.run(sniffio.current_async_library_cvar.set, None)
        self.loop.call_soon_threadsafe_in(context, group.spawn, fn, *args)

    def close(self) -> None:
        closing = self._closing
        assert closing is not None
        self.loop.call_soon(closing.set)
        with blocking_region():
            try:
                self._done.result()
            except concurrent.futures.CancelledError:
                pass
        if self._private is not None:
            self._private.stop()

    def cancel(self) -> None:
        task = self._task
        if task is not None:
            self.loop.call_soon(task.cancel)
