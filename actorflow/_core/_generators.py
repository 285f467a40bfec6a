"""Runs of generator tasks: the engine's effects carried out from inside the generator the
caller iterates.

Calling a generator task gives a generator (an async generator for ``async def`` ones). The run
starts when the caller asks for the first item, and each item the body yields is passed on as
it comes; the run's engine is the same as any task run's, and its effects are carried out by
the drivers' own handlers (``EFFECTS_SYNC``/``EFFECTS_ASYNC``), except INVOKE: the body is
stepped here, one item at a time. So a failure is retried (the body starts again and its items
come again) and a deadline counts from the first item asked for to the body's end. A caller
that stops early (``break``, ``close()``) completes the run with ``None``, as in Prefect. The
run's result is the body's return value; when it fails, the iteration raises its exception.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Generator, Iterator
from typing import Any

from . import _context
from ._drive import EFFECTS_ASYNC, EFFECTS_SYNC, ERR, INVOKE, OK, TIMEOUT, Effect, advance
from ._task_run import call_with_deadline

__all__ = ["iterate_async_run", "iterate_run"]


def _next_invoke(run: Any, gen: Any, value: Any, thrown: Exception | None) -> Effect | None:
    """Carry out the engine's effects up to its next INVOKE, and return that (``None``: the
    engine has ended)."""
    token = _context.current_run.set(run)
    try:
        while (op := advance(gen, value, thrown)) is not None and op[0] != INVOKE:
            value, thrown = EFFECTS_SYNC[op[0]](run, op)
        return op
    finally:
        _context.current_run.reset(token)


async def _anext_invoke(run: Any, gen: Any, value: Any, thrown: Exception | None) -> Effect | None:
    token = _context.current_run.set(run)
    try:
        while (op := advance(gen, value, thrown)) is not None and op[0] != INVOKE:
            value, thrown = await EFFECTS_ASYNC[op[0]](run, op)
        return op
    finally:
        _context.current_run.reset(token)


@contextlib.contextmanager
def _driving(run: Any, gen: Any) -> Iterator[None]:
    """Hold ``run`` while its engine is driven; whatever interrupts the driving ends it."""
    run.hold()
    try:
        yield
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        raise
    finally:
        run.driver_done()


def _open_body(run: Any, op: Effect) -> tuple[Any, float | None, tuple[int, Any] | None]:
    """The body's generator and its deadline, or the outcome of a call that failed."""
    try:
        body = op[1](*op[2], **op[3])
    except Exception as exc:
        return None, None, (ERR, exc)
    timeout = run.spec.timeout
    return body, None if timeout is None else time.monotonic() + timeout, None


def iterate_run(run: Any) -> Generator[Any, None, None]:
    """Drive ``run`` (of a sync generator task) while the caller iterates it."""
    gen = run.engine()
    value: Any = None
    with _driving(run, gen):
        while (op := _next_invoke(run, gen, value, None)) is not None:
            body, deadline, failed = _open_body(run, op)
            if failed is not None:
                value = failed
                continue
            while (step := _step(run, body, deadline))[0] is None:
                try:
                    yield step[1]
                except GeneratorExit:  # the caller stopped early: the run completes
                    body.close()
                    step = ((OK, None), None)
                    break
            value = step[0]
    run.state.value()  # a failed run raises its exception here


#: ``(None, item)`` for the body's next item, or ``(outcome, None)`` once it has ended.
Step = tuple[tuple[int, Any] | None, Any]


def _step(run: Any, body: Any, deadline: float | None) -> Step:
    """The body's next item, or its end."""
    token = _context.current_run.set(run)
    printer = _context.enter_print_scope(run)
    try:
        if deadline is None:
            try:
                return None, next(body)
            except StopIteration as stop:
                return (OK, stop.value), None
            except Exception as exc:
                return (ERR, exc), None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            body.close()
            return (TIMEOUT, run.spec.timeout), None
        code, item = call_with_deadline(run, next, (body,), {}, remaining)
        if code == TIMEOUT:
            return (TIMEOUT, run.spec.timeout), None
        if code == ERR:
            return ((OK, item.value) if isinstance(item, StopIteration) else (ERR, item)), None
        return None, item
    finally:
        _context.leave_print_scope(printer)
        _context.current_run.reset(token)


async def iterate_async_run(run: Any) -> AsyncGenerator[Any, None]:
    """Drive ``run`` (of an async generator task) while the caller iterates it."""
    gen = run.engine()
    value: Any = None
    with _driving(run, gen):
        while (op := await _anext_invoke(run, gen, value, None)) is not None:
            body, deadline, failed = _open_body(run, op)
            if failed is not None:
                value = failed
                continue
            # Each item is yielded outside any cancel scope: the deadline covers the steps.
            while (step := await _astep(run, body, deadline))[0] is None:
                try:
                    yield step[1]
                except GeneratorExit:  # the caller stopped early: the run completes
                    await body.aclose()
                    step = ((OK, None), None)
                    break
            value = step[0]
    run.state.value()  # a failed run raises its exception here


async def _astep(run: Any, body: Any, deadline: float | None) -> Step:
    import anyio

    token = _context.current_run.set(run)
    printer = _context.enter_print_scope(run)
    outcome: tuple[int, Any] | None = None
    item: Any = None
    try:
        remaining = None if deadline is None else deadline - time.monotonic()
        with anyio.move_on_after(remaining) as scope:
            try:
                item = await body.__anext__()
            except StopAsyncIteration:
                outcome = (OK, None)
            except Exception as exc:
                outcome = (ERR, exc)
        if scope.cancel_called:
            with anyio.CancelScope(shield=True):
                await body.aclose()
            outcome = (TIMEOUT, run.spec.timeout)
        return outcome, item
    finally:
        _context.leave_print_scope(printer)
        _context.current_run.reset(token)
