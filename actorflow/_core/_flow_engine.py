"""The flow run engine and its two interpreters (sync flows, async flows).

The engine makes every decision of a flow run; the interpreters run the body (on the caller's
thread, or in the caller's task on its event loop), wait, sleep and call hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from . import _context
from ._actor import logger
from ._bridge import call_later
from ._exceptions import (
    FlowDeadlineInterrupt,
    FlowRunTimeoutError,
    ParameterBindError,
)
from ._flow_run import FlowRun
from ._futures import TaskFuture, TaskFutureList
from ._interrupt import Interruptible
from ._resolve import has_futures
from ._retries import delay_for
from ._spawn import current_loop, open_group
from ._states import (
    AWAITING_RETRY,
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSED,
    RETRYING,
    RUNNING,
    TIMED_OUT,
    State,
    StateKind,
    StateType,
)
from ._task_run import (
    CALL,
    ERR,
    OK,
    SLEEP,
    TIMEOUT,
    UPSTREAM,
    TaskRun,
    common_effect_async,
    common_effect_sync,
    resolve_inputs,
)

BODY = 4  # (BODY, args, kwargs) -> (OK|ERR|TIMEOUT, value)


# -- the engine ---------------------------------------------------------------------------------
def flow_engine(fr: FlowRun) -> Generator[tuple[Any, ...], Any, None]:
    flow = fr.flow
    try:
        args, kwargs = flow.validate(fr.args, fr.kwargs)
    except ParameterBindError as exc:
        fr.transition(
            FAILED,
            f"Validation of flow parameters failed with error: {type(exc).__name__}: {exc}",
            exc,
        )
        yield from _hooks(fr, flow.on_failure_hooks)
        return

    # Futures among the parameters and in wait_for are resolved first, as for task runs.
    if fr.wait_for is not None or has_futures(args, kwargs):
        resolved = yield from resolve_inputs(fr, args, kwargs, fr.wait_for)
        if resolved is None:
            return
        args, kwargs = resolved

    while True:
        fr.run_count += 1
        fr.transition(RUNNING if fr.run_count == 1 else RETRYING)
        yield from _hooks(fr, flow.on_running_hooks)
        fr.begin_attempt()
        outcome, value = yield (BODY, args, kwargs)
        message: str | None
        if outcome == OK:
            runs: list[tuple[TaskRun, bool]] = []
            _returned_futures(value, runs)
            if runs:
                yield (UPSTREAM, [r for r, _ in runs])
            kind, message, data = _state_from_return(value)
        elif outcome == TIMEOUT:
            message = f"Flow run exceeded timeout of {value} second(s)"
            kind, data = TIMED_OUT, FlowRunTimeoutError(message)
        else:
            kind = FAILED
            message = f"Flow run encountered an exception: {type(value).__name__}: {value}"
            data = value
        if kind.type is StateType.FAILED and fr.run_count <= flow.retries:
            seconds = delay_for(flow.retry_delay_seconds, flow.retries, fr.run_count, None)
            if seconds > 0:
                fr.transition(AWAITING_RETRY, f"Retrying in {seconds:g} seconds: {message}")
                yield (SLEEP, seconds)
            continue
        fr.transition(kind, message, data)
        if kind.type is StateType.COMPLETED:
            yield from _hooks(fr, flow.on_completion_hooks)
        elif kind.type is StateType.FAILED:
            yield from _hooks(fr, flow.on_failure_hooks)
        elif kind.type is StateType.CANCELLED:
            yield from _hooks(fr, flow.on_cancellation_hooks)
        elif kind.type is StateType.CRASHED:
            yield from _hooks(fr, flow.on_crashed_hooks)
        return


def _hooks(fr: FlowRun, hooks: tuple[Any, ...]) -> Generator[tuple[Any, ...], Any, None]:
    if not hooks:
        return
    state = fr.state
    for hook in hooks:
        try:
            yield (CALL, hook, (fr.flow, fr, state))
        except Exception:
            logger.exception(
                "An error was encountered while running hook %r of %s",
                getattr(hook, "__name__", hook),
                fr.label(),
            )


def _returned_futures(value: Any, into: list[tuple[TaskRun, bool]]) -> None:
    if type(value) is TaskFuture:
        into.append((value.task_run, False))
    elif type(value) in (list, tuple, set, TaskFutureList) and value:
        for item in value:
            if type(item) is TaskFuture:
                into.append((item.task_run, False))


def _state_from_return(value: Any) -> tuple[StateKind, str | None, Any]:
    """Prefect's rules: a returned state or future gives its state; a collection of them gives
    a state derived from all; anything else is Completed."""
    if type(value) is TaskFuture:
        value = value.state
    if isinstance(value, State):
        if not value.is_final() and value.type is not StateType.PAUSED:
            # A flow run cannot go back to Pending: an unfinished returned state fails it.
            return FAILED, "1/1 states are not final.", value
        return value.kind, value.message, value.data
    if type(value) is TaskFutureList:  # a map call's futures count as a plain list of them
        value = list(value)
    if (
        type(value) in (list, tuple, set)
        and value
        and all(isinstance(item, (State, TaskFuture)) for item in value)
    ):
        states = [item.state if type(item) is TaskFuture else item for item in value]
        data = type(value)(states) if type(value) is not set else value
        total = len(states)
        cancelled = sum(s.is_cancelled() for s in states)
        if cancelled:
            return CANCELLED, f"{cancelled}/{total} states cancelled.", data
        paused = sum(s.is_paused() for s in states)
        if paused:
            return PAUSED, f"{paused}/{total} states paused.", data
        failed = sum(s.is_failed() or s.is_crashed() for s in states)
        if failed:
            return FAILED, f"{failed}/{total} states failed.", data
        unfinished = sum(not s.is_final() for s in states)
        if unfinished:
            return FAILED, f"{unfinished}/{total} states are not final.", data
        return COMPLETED, "All states completed.", data
    return COMPLETED, None, value


# -- the sync interpreter -----------------------------------------------------------------------
def drive_flow_sync(fr: FlowRun) -> FlowRun:
    token = _context.current_run.set(fr)
    gen = flow_engine(fr)
    value: Any = None
    thrown: Exception | None = None
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                return fr
            thrown = None
            code = op[0]
            if code == BODY:
                value = _body_sync(fr, op[1], op[2])
            else:
                value, thrown = common_effect_sync(op)
    except BaseException as exc:
        gen.close()
        fr.interrupted(exc)
        raise
    finally:
        _context.current_run.reset(token)
        fr.close()


def _body_sync(fr: FlowRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, Any]:
    flow = fr.flow
    timeout = flow.timeout_seconds
    printer = _context.print_target.set(_context.logger_for(fr)) if fr.log_prints else None
    body = Interruptible(FlowDeadlineInterrupt)
    disarm: Callable[[], None] | None = None
    if timeout is not None:

        def deadline() -> None:
            fr.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
            body.interrupt()

        disarm = call_later(timeout, deadline)
    try:
        try:
            try:
                result: tuple[int, Any] = (OK, body.call(flow.fn, *args, **kwargs))
            finally:
                if disarm is not None:
                    disarm()
        except body.signal:
            result = (TIMEOUT, timeout)
        except Exception as exc:
            fr.cancel_children(f"its flow run failed: {type(exc).__name__}: {exc}")
            result = (ERR, exc)
        fr.join_sync()
    except BaseException:
        fr.cancel_children("its flow run was interrupted")
        fr.join_sync()
        raise
    finally:
        if printer is not None:
            _context.print_target.reset(printer)
    return result


# -- the async interpreter ----------------------------------------------------------------------
async def drive_flow_async(fr: FlowRun) -> FlowRun:
    token = _context.current_run.set(fr)
    gen = flow_engine(fr)
    value: Any = None
    thrown: Exception | None = None
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                return fr
            thrown = None
            code = op[0]
            if code == BODY:
                value = await _body_async(fr, op[1], op[2])
            else:
                value, thrown = await common_effect_async(op)
    except BaseException as exc:
        gen.close()
        fr.interrupted(exc)
        raise
    finally:
        _context.current_run.reset(token)
        if fr.holds_resources():
            # Shutting a runner down may block (joining threads, closing a cluster): never on
            # the caller's event loop.
            import anyio

            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(fr.close)
        else:
            fr.close()


async def _body_async(
    fr: FlowRun, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int, Any]:
    import anyio

    flow = fr.flow
    timeout = flow.timeout_seconds
    fr.loop = current_loop()
    printer = _context.print_target.set(_context.logger_for(fr)) if fr.log_prints else None
    result: tuple[int, Any] = (TIMEOUT, timeout)
    try:
        with anyio.CancelScope() as scope:
            if timeout is not None:
                scope.deadline = anyio.current_time() + timeout
            async with open_group() as group:
                fr._group = group
                try:
                    result = (OK, await flow.fn(*args, **kwargs))
                except Exception as exc:
                    fr.cancel_children(f"its flow run failed: {type(exc).__name__}: {exc}")
                    result = (ERR, exc)
                await fr.join_async()
        if scope.cancelled_caught:
            fr.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
            fr.reap_unstarted()
            with anyio.CancelScope(shield=True):
                await fr.join_async()
    except BaseException:
        fr.cancel_children("its flow run was cancelled")
        fr.reap_unstarted()
        with anyio.CancelScope(shield=True):
            await fr.join_async()
        raise
    finally:
        fr._group = None
        if printer is not None:
            _context.print_target.reset(printer)
    return result


__all__ = ["drive_flow_async", "drive_flow_sync"]
