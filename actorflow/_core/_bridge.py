"""Sync entry points onto the async core.

Sync code (a sync flow, a task body on a worker thread) sometimes needs an event loop: to run an
async task a sync flow submitted, an async hook, or a timer. It uses the runtime's loop, an
asyncio loop on a thread of its own (see :mod:`._runtime`).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar, final

from . import _suspend
from ._pool import blocking_region
from ._runtime import RuntimeLoop, runtime
from ._spawn import Group, Loop, current_loop

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

__all__ = ["LoopGroup", "call_later", "run_coroutine_sync", "to_thread"]


def run_coroutine_sync(coro: Coroutine[Any, Any, T] | Any) -> T:
    """Run ``coro`` to completion and return its result, from sync code.

    Inside an async flow's body, the body suspends while the coroutine runs on its own loop
    (see :mod:`._suspend`). Elsewhere it runs on the runtime loop; from the runtime loop's own
    thread (sync code inside an async task of a sync flow), on a private loop of its own, since
    blocking the runtime loop on itself would never return.
    """
    if _suspend.suspendable():
        return _suspend.await_here(coro)  # type: ignore[no-any-return]  # the coroutine's value

    import asyncio  # here: a script that never runs async code does not load it

    async def wrap() -> T:
        return await coro

    if runtime.on_loop_thread():
        private = RuntimeLoop("actorflow-private")
        try:
            assert private.loop is not None
            return asyncio.run_coroutine_threadsafe(wrap(), private.loop).result()
        finally:
            private.stop()
    loop = runtime.loop().loop
    assert loop is not None
    future = asyncio.run_coroutine_threadsafe(wrap(), loop)
    with blocking_region():
        return future.result()


async def to_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the runtime's default pool, awaited without blocking the event loop.

    A hop through the pool costs a fraction of ``anyio.to_thread``'s. If the waiter is
    cancelled the call still finishes (a record write or a lock is never left half done).
    """
    return await call_off_loop(runtime.default_pool().submit, fn, *args)


async def call_off_loop(
    start: Callable[[Callable[[], None]], object], fn: Callable[..., T], *args: Any
) -> T:
    """``fn(*args)`` on the thread ``start(work)`` hands ``work`` to, awaited without blocking
    the event loop: its value, or its exception raised here."""
    loop = current_loop()
    event = loop.new_event()
    box: list[tuple[bool, Any]] = []

    def work() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # handed to the waiter
            box.append((False, exc))
        finally:
            loop.call_soon_threadsafe(event.set)

    start(work)
    await event.wait()
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]  # fn's value


def call_later(seconds: float, fn: Callable[[], None]) -> Callable[[], None]:
    """Call ``fn()`` on the runtime loop after ``seconds``; returns a function that cancels it."""
    loop = runtime.loop().loop
    assert loop is not None
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

    :meth:`start_soon` is thread-safe; :meth:`close` waits until every child is done.
    """

    def __init__(self) -> None:
        # From the runtime loop's own thread (a sync flow inside an async task of a sync flow),
        # the group gets a private loop: waiting on the shared one here would never return.
        self._private = RuntimeLoop("actorflow-private") if runtime.on_loop_thread() else None
        host = self._private or runtime.loop()
        assert host.loop is not None and host.handle is not None
        self.loop: Loop = host.handle
        self._ready = threading.Event()
        self._group: Group | None = None
        self._closing: asyncio.Event | None = None
        import asyncio  # the runtime loop above has loaded it

        self._done = asyncio.run_coroutine_threadsafe(self._main(), host.loop)
        self._ready.wait()

    async def _main(self) -> None:
        import asyncio

        self._closing = asyncio.Event()
        try:
            async with self.loop.open_group() as group:
                self._group = group
                self._ready.set()
                await self._closing.wait()
        finally:
            self._ready.set()

    @property
    def group(self) -> Group:
        group = self._group
        assert group is not None
        return group

    def start_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the group's loop, in a copy of the caller's context, from any
        thread."""
        # If the caller is a trio task, its marker of the running async library must not follow
        # the call onto this asyncio loop.
        context = contextvars.copy_context()
        if "sniffio" in sys.modules:
            # An import statement, not a look in sys.modules: another thread may be importing
            # sniffio right now, and the statement waits until its module is complete.
            import sniffio

            context.run(sniffio.current_async_library_cvar.set, None)
        self.loop.call_soon_in(context, fn, *args)

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
