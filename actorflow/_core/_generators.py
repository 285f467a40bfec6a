"""Runs of generator tasks: the engine's effects carried out from inside the generator the
caller iterates.

Calling a generator task gives a generator (an async generator for ``async def`` ones). The run
starts when the caller asks for the first item, and each item the body yields is passed on as
it comes; the run's engine is the same as any task run's, so a failure is retried (the body
starts again and its items come again) and a deadline counts from the first item asked for to
the body's end. A caller that stops early (``break``, ``close()``) completes the run with
``None``, as in Prefect. The run's result is the body's return value; when it fails, the
iteration raises its exception.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

from . import _context, _pool
from ._clock import current_clock
from ._drive import CALL, ERR, INVOKE, OK, TIMEOUT, UPSTREAM, call_sync

__all__ = ["iterate_async_run", "iterate_run"]


def iterate_run(run: Any) -> Generator[Any, None, None]:
    """Drive ``run`` (of a sync generator task) while the caller iterates it."""
    from ._task_run import call_with_deadline

    gen = run.engine()
    value: Any = None
    thrown: Exception | None = None
    timeout = run.spec.timeout
    run.hold()
    try:
        while True:
            token = _context.current_run.set(run)
            try:
                try:
                    op = gen.send(value) if thrown is None else gen.throw(thrown)
                except StopIteration:
                    break
                thrown = None
                code = op[0]
                if code == CALL:
                    try:
                        value = call_sync(op[1], *op[2])
                    except Exception as exc:
                        value, thrown = None, exc
                elif code == UPSTREAM:
                    for upstream in op[1]:
                        upstream.wait_sync()
                    value = None
                elif code != INVOKE:  # SLEEP
                    with _pool.blocking_region():
                        current_clock().sleep_sync(op[1])
                    value = None
            finally:
                _context.current_run.reset(token)
            if code != INVOKE:
                continue
            # The body, one item at a time.
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                body = op[1](*op[2], **op[3])
            except Exception as exc:
                value = (ERR, exc)
                continue
            while True:
                outcome: tuple[int, Any] | None = None
                token = _context.current_run.set(run)
                printer = _context.enter_print_scope(run)
                try:
                    if deadline is None:
                        try:
                            item = next(body)
                        except StopIteration as stop:
                            outcome = (OK, stop.value)
                        except Exception as exc:
                            outcome = (ERR, exc)
                    elif deadline - time.monotonic() <= 0:
                        body.close()
                        outcome = (TIMEOUT, timeout)
                    else:
                        step, item = call_with_deadline(
                            run, next, (body,), {}, deadline - time.monotonic()
                        )
                        if step == TIMEOUT:
                            outcome = (TIMEOUT, timeout)
                        elif step == ERR:
                            stopped = isinstance(item, StopIteration)
                            outcome = (OK, item.value) if stopped else (ERR, item)
                finally:
                    _context.leave_print_scope(printer)
                    _context.current_run.reset(token)
                if outcome is not None:
                    value = outcome
                    break
                try:
                    yield item
                except GeneratorExit:  # the caller stopped early: the run completes
                    body.close()
                    value = (OK, None)
                    break
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        raise
    finally:
        run.driver_done()
    run.state.value()  # a failed run raises its exception here


async def iterate_async_run(run: Any) -> AsyncGenerator[Any, None]:
    """Drive ``run`` (of an async generator task) while the caller iterates it."""
    import anyio

    gen = run.engine()
    value: Any = None
    thrown: Exception | None = None
    timeout = run.spec.timeout
    run.hold()
    try:
        while True:
            token = _context.current_run.set(run)
            try:
                try:
                    op = gen.send(value) if thrown is None else gen.throw(thrown)
                except StopIteration:
                    break
                thrown = None
                code = op[0]
                if code == CALL:
                    try:
                        value = op[1](*op[2])
                        if inspect.isawaitable(value):
                            value = await value
                    except Exception as exc:
                        value, thrown = None, exc
                elif code == UPSTREAM:
                    for upstream in op[1]:
                        await upstream.wait_async()
                    value = None
                elif code != INVOKE:  # SLEEP
                    await current_clock().sleep(op[1])
                    value = None
            finally:
                _context.current_run.reset(token)
            if code != INVOKE:
                continue
            # The body, one item at a time; each item is yielded outside any cancel scope.
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                body = op[1](*op[2], **op[3])
            except Exception as exc:
                value = (ERR, exc)
                continue
            while True:
                token = _context.current_run.set(run)
                printer = _context.enter_print_scope(run)
                try:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    outcome: tuple[int, Any] | None = None
                    with anyio.move_on_after(remaining) as scope:
                        try:
                            item = await body.__anext__()
                        except StopAsyncIteration:
                            outcome = (OK, None)
                        except Exception as exc:
                            outcome = (ERR, exc)
                    if scope.cancel_called:
                        outcome = (TIMEOUT, timeout)
                finally:
                    _context.leave_print_scope(printer)
                    _context.current_run.reset(token)
                if outcome is not None:
                    value = outcome
                    if outcome[0] == TIMEOUT:
                        with anyio.CancelScope(shield=True):
                            await body.aclose()
                    break
                try:
                    yield item
                except GeneratorExit:  # the caller stopped early: the run completes
                    await body.aclose()
                    value = (OK, None)
                    break
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        raise
    finally:
        run.driver_done()
    run.state.value()  # a failed run raises its exception here
