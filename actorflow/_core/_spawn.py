"""The seam onto each event loop's own primitives: one :class:`Loop` object per running loop.

anyio serves everything that is not per task; what is per task goes straight to the backend's
own primitives here, because anyio's per-task wrapping costs about four times them (see
``docs/design.md``): spawning a run into a native task group (``asyncio.TaskGroup`` or a trio
nursery), the handle that cancels one run (its asyncio Task, or a trio CancelScope of its own),
telling a run's own cancellation from its host's, and waking a waiter from another thread.

Everything backend-specific lives in this module; the rest of the core sees a :class:`Loop`. A
loop's object is made once and kept in a per-loop slot (a trio ``RunVar``, or a weak mapping
keyed by the asyncio loop), so asking for the current one costs a lookup, not an allocation.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, final

if TYPE_CHECKING:
    import asyncio
else:
    # Loaded with the first asyncio loop seen (see ``_asyncio_loop``): a sync script never
    # runs one, and asyncio is a third of the cost of starting it.
    asyncio = None

__all__ = ["Event", "Group", "Loop", "current_backend", "current_loop", "is_cancellation"]


class Spawned(Protocol):
    """What this module sees of a run it spawns (an ``Actor``): the handle that interrupts its
    driver (its asyncio Task or trio CancelScope), set once the driver runs."""

    _wake: Any


RunT = TypeVar("RunT", bound=Spawned)
#: A driver of one run: the coroutine function a spawned run's task runs.
Driver = Callable[[RunT, "Loop"], Coroutine[Any, Any, Any]]


class Event(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    async def wait(self) -> Any: ...


class Group(Protocol):
    """A native task group that a supervisor owns; its exit waits for every child."""

    def start(self, driver: Driver[RunT], run: RunT) -> None:
        """Start ``driver(run, loop)`` as a child task (on the group's loop thread)."""


def _trio() -> Any:
    """trio, if it is loaded and complete (never imported here: it costs 100 ms)."""
    trio = sys.modules.get("trio")
    # A trio that another thread is still importing has no ``lowlevel`` yet, and cannot be
    # running in this thread.
    return trio if getattr(trio, "lowlevel", None) is not None else None


def _no_asyncio_loop_yet() -> Any:
    """``_running_asyncio`` until asyncio is loaded (by anyone): no asyncio loop can run before
    it is. Once it is, asyncio's own function takes this one's place."""
    global _running_asyncio
    events = sys.modules.get("asyncio.events")
    running = getattr(events, "_get_running_loop", None)
    if running is None:
        return None
    _running_asyncio = running
    return running()


# Then ``asyncio._get_running_loop()`` (not ``get_running_loop()``): the C function that returns
# None instead of raising, as cheap as a lookup; asyncio itself and anyio rely on it.
_running_asyncio: Callable[[], Any] = _no_asyncio_loop_yet


def current_backend() -> str | None:
    """``"asyncio"``, ``"trio"`` or ``None`` when no event loop runs in this thread."""
    if _running_asyncio() is not None:
        return "asyncio"
    trio = _trio()
    if trio is not None and trio.lowlevel.in_trio_run():
        return "trio"
    return None


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is an event loop's cancellation (or a group made only of them)."""
    exceptions = sys.modules.get("asyncio.exceptions")  # none raised before asyncio is loaded
    if exceptions is not None and isinstance(exc, exceptions.CancelledError):
        return True
    trio = _trio()
    if trio is not None and isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in exc.exceptions)
    return False


class Loop:
    """A handle on one running event loop, usable from any thread."""

    __slots__ = ("__weakref__", "_call_soon_threadsafe", "backend", "thread_id")

    backend: str

    def __init__(self, call_soon_threadsafe: Callable[..., Any]) -> None:
        self.thread_id = threading.get_ident()
        self._call_soon_threadsafe = call_soon_threadsafe

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

    def call_soon_in(self, context: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Like :meth:`call_soon_threadsafe`, running ``fn`` in the contextvars ``context``."""
        self._call_soon_threadsafe(context.run, fn, *args)

    # -- what each backend provides -----------------------------------------------------------
    def new_event(self) -> Event:
        raise NotImplementedError

    def open_group(self) -> Any:
        """``async with loop.open_group() as group``: a native task group."""
        raise NotImplementedError

    def enter(self, run: Any) -> None:
        """First thing in a spawned run's driver, on the loop: the run may now be cancelled."""

    def cancel_run(self, run: Spawned) -> None:
        """On the loop thread: interrupt ``run``'s driver wherever it awaits."""
        wake = run._wake
        if wake is not None:
            wake.cancel()

    def absorbs_own_cancel(self, run: Any) -> bool:
        """In a spawned driver that was cancelled: was it the run's own cancellation (a Cancel
        message), which stops this run only? ``False``: its host cancelled the whole group."""
        raise NotImplementedError


@final
class AsyncioLoop(Loop):
    """Runs go into ``asyncio.TaskGroup``; a run's cancel handle is its Task."""

    __slots__ = ()
    backend = "asyncio"

    def new_event(self) -> Event:
        return asyncio.Event()

    def enter(self, run: Any) -> None:
        run._wake = asyncio.current_task()

    def open_group(self) -> Any:
        return _AsyncioGroupScope(self)

    def absorbs_own_cancel(self, run: Any) -> bool:
        # Swallow only the run's own cancellation: a cancelled host must still see its own.
        task = run._wake
        return run.pending_cancel() is not None and task is not None and task.uncancel() == 0


@final
class TrioLoop(Loop):
    """Runs go into a trio nursery; a run's cancel handle is a CancelScope of its own (the only
    way to cancel one trio task)."""

    __slots__ = ()
    backend = "trio"

    def new_event(self) -> Event:
        import trio

        return trio.Event()

    def open_group(self) -> Any:
        return _TrioGroupScope(self)

    def absorbs_own_cancel(self, run: Any) -> bool:
        # The run's own scope (see _TrioGroup.start) catches a cancellation it called itself.
        scope = run._wake
        return scope is not None and bool(scope.cancel_called)


_asyncio_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Loop] = (
    weakref.WeakKeyDictionary()
)
_trio_slot: Any = None


def current_loop() -> Loop:
    """The :class:`Loop` of the event loop running in this thread; RuntimeError if none."""
    native = _running_asyncio()
    if native is not None:
        try:
            return _asyncio_loops[native]
        except KeyError:
            _load_asyncio()
            # Weakly: the Loop is the value of its native loop's key in a weak mapping, and a
            # strong reference from it would keep every loop that ever ran a flow alive.
            loop: Loop = AsyncioLoop(_call_soon_weakly(weakref.ref(native)))
            try:
                _asyncio_loops[native] = loop
            except TypeError:  # a loop class that cannot be weakly referenced: not cached
                pass
            return loop
        except TypeError:
            _load_asyncio()
            return AsyncioLoop(native.call_soon_threadsafe)
    trio = _trio()
    if trio is not None and trio.lowlevel.in_trio_run():
        global _trio_slot
        if _trio_slot is None:
            _trio_slot = trio.lowlevel.RunVar("actorflow_loop")
        try:
            found: Loop = _trio_slot.get()
            return found
        except LookupError:
            token = trio.lowlevel.current_trio_token()
            loop = TrioLoop(token.run_sync_soon)
            _trio_slot.set(loop)
            return loop
    raise RuntimeError("actorflow needs a running asyncio or trio event loop here")


def _load_asyncio() -> None:
    """Make asyncio this module's (an asyncio loop runs: it is loaded already)."""
    global asyncio
    import asyncio


def _call_soon_weakly(
    ref: weakref.ReferenceType[asyncio.AbstractEventLoop],
) -> Callable[..., Any]:
    def call_soon_threadsafe(fn: Callable[..., Any], *args: Any) -> Any:
        native = ref()
        if native is None:
            raise RuntimeError("Event loop is closed")  # what a closed loop says
        return native.call_soon_threadsafe(fn, *args)

    return call_soon_threadsafe


# -- native task groups ------------------------------------------------------------------------
@final
class _AsyncioGroup:
    __slots__ = ("_loop", "_tg")

    def __init__(self, tg: asyncio.TaskGroup, loop: Loop) -> None:
        self._tg = tg
        self._loop = loop

    def start(self, driver: Driver[RunT], run: RunT) -> None:
        # The run's cancel handle is set by its driver once it runs (see AsyncioLoop.enter):
        # a task cancelled before its first step would never run its driver at all.
        self._tg.create_task(driver(run, self._loop))


@final
class _TrioGroup:
    __slots__ = ("_loop", "_nursery")

    def __init__(self, nursery: Any, loop: Loop) -> None:
        self._nursery = nursery
        self._loop = loop

    def start(self, driver: Driver[RunT], run: RunT) -> None:
        self._nursery.start_soon(_in_own_scope, driver, run, self._loop)


async def _in_own_scope(driver: Driver[RunT], run: RunT, loop: Loop) -> None:
    import trio

    with trio.CancelScope() as scope:
        run._wake = scope
        await driver(run, loop)


class _AsyncioGroupScope:
    __slots__ = ("_cm", "_loop")

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._cm = asyncio.TaskGroup()

    async def __aenter__(self) -> Group:
        return _AsyncioGroup(await self._cm.__aenter__(), self._loop)

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._cm.__aexit__(*exc_info)


class _TrioGroupScope:
    __slots__ = ("_cm", "_loop")

    def __init__(self, loop: Loop) -> None:
        import trio

        self._loop = loop
        self._cm = trio.open_nursery()

    async def __aenter__(self) -> Group:
        return _TrioGroup(await self._cm.__aenter__(), self._loop)

    async def __aexit__(self, *exc_info: Any) -> bool:
        try:
            return bool(await self._cm.__aexit__(*exc_info))
        except BaseExceptionGroup as group:
            # As from an asyncio.TaskGroup, an interrupt (Ctrl-C, SystemExit) leaves the group
            # as itself, not wrapped in a group, so that it ends the program as it should.
            interrupt = _first_interrupt(group)
            if interrupt is None:
                raise
            raise interrupt from None


def _first_interrupt(group: BaseExceptionGroup[Any]) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first_interrupt(exc)
            if found is not None:
                return found
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            return exc
    return None
