"""The per-task seam onto each backend's own primitives.

anyio serves everything that is not per task; spawning a run, waking a waiter from another
thread and cancelling one run go straight to ``asyncio.TaskGroup`` / trio nurseries here, because
anyio's per-task wrapping costs about four times the native primitives (see docs/design.md).
Everything in this module is chosen once per event loop, never per call site.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, final

import attrs


class Group(Protocol):
    """What a supervisor needs from a task group: spawn a child it owns.

    Cancelling a group is done the structured way: by cancelling the scope around it, which makes
    the native group cancel every child on exit.
    """

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> Any:
        """Start ``fn(*args)`` as a child task of the group."""


class Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    async def wait(self) -> Any: ...


def current_backend() -> str | None:
    """``"asyncio"``, ``"trio"`` or ``None`` when no event loop runs in this thread."""
    try:
        asyncio.get_running_loop()
        return "asyncio"
    except RuntimeError:
        pass
    # No import here (trio costs 100 ms): only a loaded trio can be running. A trio that another
    # thread is still importing has no ``lowlevel`` yet, and cannot be running in this thread.
    lowlevel = getattr(sys.modules.get("trio"), "lowlevel", None)
    if lowlevel is not None and lowlevel.in_trio_run():
        return "trio"
    return None


@final
@attrs.define(eq=False)
class Loop:
    """A handle on one running event loop, usable from any thread."""

    backend: str
    thread_id: int
    _call_soon_threadsafe: Callable[..., Any]
    _native: Any

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.thread_id

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop: now if already there, else as soon as it can."""
        if threading.get_ident() == self.thread_id:
            fn(*args)
        else:
            self._call_soon_threadsafe(fn, *args)

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        self._call_soon_threadsafe(fn, *args)

    def call_soon_threadsafe_in(self, context: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`call_soon_threadsafe`, running ``fn`` in ``context``."""
        self._call_soon_threadsafe(context.run, fn, *args)

    def new_event(self) -> Event:
        if self.backend == "asyncio":
            return asyncio.Event()
        import trio

        return trio.Event()

    def is_alive(self) -> bool:
        if self.backend == "asyncio":
            return not self._native.is_closed()
        return True


def current_loop() -> Loop:
    """The handle of the loop running in this thread; raises RuntimeError if there is none."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return Loop("asyncio", threading.get_ident(), loop.call_soon_threadsafe, loop)
    backend = current_backend()
    if backend == "trio":
        import trio

        token = trio.lowlevel.current_trio_token()
        return Loop("trio", threading.get_ident(), token.run_sync_soon, token)
    raise RuntimeError("no event loop is running in this thread")


@final
class _AsyncioGroup:
    __slots__ = ("_tg",)

    def __init__(self, tg: asyncio.TaskGroup) -> None:
        self._tg = tg

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> asyncio.Task[Any]:
        return self._tg.create_task(fn(*args))


@final
class _TrioGroup:
    __slots__ = ("_nursery",)

    def __init__(self, nursery: Any) -> None:
        self._nursery = nursery

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self._nursery.start_soon(fn, *args)


class open_group:
    """``async with open_group() as group``: the loop's native task group behind :class:`Group`."""

    __slots__ = ("_backend", "_cm")

    def __init__(self) -> None:
        self._backend = current_backend()
        self._cm: Any = None

    async def __aenter__(self) -> Group:
        if self._backend == "asyncio":
            self._cm = asyncio.TaskGroup()
            return _AsyncioGroup(await self._cm.__aenter__())
        if self._backend == "trio":
            import trio

            self._cm = trio.open_nursery()
            return _TrioGroup(await self._cm.__aenter__())
        raise RuntimeError("actorflow needs a running asyncio or trio event loop here")

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._cm.__aexit__(*exc_info)  # type: ignore[no-any-return]


def cancelled_exc_class() -> type[BaseException]:
    """The exception the current backend delivers on cancellation."""
    if current_backend() == "trio":
        import trio

        return trio.Cancelled  # type: ignore[no-any-return]
    return asyncio.CancelledError
