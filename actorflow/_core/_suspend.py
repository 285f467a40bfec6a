"""Blocking waits inside async flow bodies: the body is suspended, and its loop goes on.

Prefect runs submitted tasks on worker threads, so in an async flow a blocking
``future.result()`` works there. actorflow runs async children natively on the flow's own event
loop, where a blocking call would stop the very loop that must finish them. So an async flow's
body runs in a greenlet: a blocking wait anywhere inside it, at any depth of sync code
(``future.result()``, ``future.wait()``, ``wait(...)``, ``as_completed(...)``, a sync task or
flow called directly), switches out to the body's own task, which *awaits* the thing instead.
The loop goes on (the children, and every other flow on it), and the body resumes with the
outcome. ``await future`` stays the fast path; code outside an async flow's body is unchanged.

This is the technique SQLAlchemy's asyncio support is built on (``greenlet_spawn``), applied to
a whole coroutine: every value the body's coroutine yields passes through to the event loop
untouched, so it works on asyncio and trio alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator, Iterable
from typing import Any, final

from ._spawn import Loop

__all__ = ["await_here", "may_block", "suspendable", "suspendable_body", "wait_for_runs"]

#: Names whose use in an async task's code marks a body that may wait on a run while blocking.
_BLOCKING_NAMES = frozenset({"result", "wait", "as_completed", "wait_sync"})

# Set once a body greenlet exists (greenlet is imported then): until then, ``suspendable()`` is
# one truth test, and code that runs no async flow never imports greenlet.
_active = False
greenlet: Any = None
_BodyGreenlet: Any = None


def _load() -> None:
    global greenlet, _BodyGreenlet, _active
    if _BodyGreenlet is not None:
        return
    import greenlet as module  # type: ignore[import-untyped]  # greenlet ships no types

    @final
    class BodyGreenlet(module.greenlet):  # type: ignore[misc]  # an untyped base
        """The greenlet an async flow's body coroutine is stepped in."""

        loop: Loop

    greenlet, _BodyGreenlet, _active = module, BodyGreenlet, True


def suspendable() -> bool:
    """Whether the running code is inside an async flow's body on its loop's thread, where a
    blocking wait can suspend the body instead (see :func:`await_here`)."""
    return _active and type(greenlet.getcurrent()) is _BodyGreenlet


def may_block(fn: Any) -> bool:
    """Whether the code of an async task ``fn`` (nested functions and comprehensions included)
    names a blocking wait: its body then runs suspendable, as an async flow's does. A wait
    hidden in a helper called from the body is not seen; it raises ``BlockingWaitOnEventLoop``
    with what to do instead."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    pending = [code] if code is not None else []
    while pending:
        code = pending.pop()
        if not _BLOCKING_NAMES.isdisjoint(code.co_names):
            return True
        pending.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return False


def await_here(awaitable: Awaitable[Any]) -> Any:
    """From sync code inside an async flow's body: await ``awaitable`` in the body's task (the
    body is suspended meanwhile) and return its value, or raise its exception."""
    kind, value = greenlet.getcurrent().parent.switch(("await", awaitable))
    if kind == "fail":
        raise value
    return value


def wait_for_runs(runs: Iterable[Any], timeout: float | None) -> bool:
    """Suspend the body until every run is done; ``False`` if ``timeout`` passed first."""
    return bool(await_here(_wait_runs(list(runs), timeout)))


async def _wait_runs(runs: list[Any], seconds: float | None) -> bool:
    if seconds is None:
        for run in runs:
            await run.wait_async()
        return True
    import anyio

    with anyio.move_on_after(seconds):
        for run in runs:
            await run.wait_async()
        return True
    return False


@final
class suspendable_body:  # used like a function: ``await suspendable_body(...)``
    """``await suspendable_body(coro, loop)``: run the coroutine of an async flow's body so that
    a blocking wait inside it suspends it (see the module's docstring)."""

    __slots__ = ("_coro", "_glet")

    def __init__(self, coro: Coroutine[Any, Any, Any], loop: Loop) -> None:
        _load()
        self._coro = coro
        glet = _BodyGreenlet(run=self._step_coroutine, parent=greenlet.getcurrent())
        glet.loop = loop
        # The body sees the context of the task that runs it (its run, clock, tags), and what it
        # sets there is seen by that task: one Context object, as SQLAlchemy shares it.
        glet.gr_context = greenlet.getcurrent().gr_context
        self._glet = glet

    def _step_coroutine(self, message: tuple[str, Any]) -> tuple[str, Any]:
        # Inside the greenlet: step the coroutine; each value it yields goes out to the task.
        coro = self._coro
        while True:
            kind, value = message
            try:
                out = coro.send(value) if kind == "send" else coro.throw(value)
            except StopIteration as stop:
                return "return", stop.value
            except BaseException as exc:
                return "raise", exc
            message = greenlet.getcurrent().parent.switch(("yield", out))

    def __await__(self) -> Generator[Any, Any, Any]:
        glet = self._glet
        message: tuple[str, Any] = ("send", None)
        while True:
            glet.parent = greenlet.getcurrent()  # whoever steps us now (an outer body, perhaps)
            kind, value = glet.switch(message)
            if kind == "yield":  # the coroutine awaits something: pass it to the event loop
                try:
                    message = ("send", (yield value))
                except BaseException as exc:
                    message = ("throw", exc)
            elif kind == "await":  # a blocking wait inside the body: await it here instead
                try:
                    result = yield from _generator(value)
                except BaseException as exc:
                    message = ("fail", exc)
                else:
                    message = ("ok", result)
            elif kind == "return":
                return value
            else:
                raise value


def _generator(awaitable: Awaitable[Any]) -> Generator[Any, Any, Any]:
    return (yield from awaitable.__await__())
