"""The FlowRun supervisor actor.

A flow run spawns its children (submitted task runs) into structures it owns: async children
into a native task group on the flow's event loop, sync children into its task runner's pool. It
tracks the children in flight, never the ones that finished, so memory follows the work in
flight. When the body returns it waits for every child; when the body raises, times out or is
cancelled it cancels them (sync bodies already running cannot be interrupted and are waited for).
Then it derives its final state with Prefect's rules.

Like task runs, a flow run is driven by one engine generator and two interpreters, one for sync
flows and one for async flows.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, final

from . import _context, _pool
from ._actor import Actor, Cancel, logger
from ._bridge import LoopGroup, call_later
from ._clock import current_clock
from ._exceptions import (
    CancelledRun,
    CrashedRun,
    FlowRunTimeoutError,
    ParameterBindError,
    UpstreamTaskError,
)
from ._futures import TaskFuture, TaskFutureList
from ._resolve import NotReadyError, collect
from ._retries import delay_for
from ._runner import TaskRunner, ThreadPoolTaskRunner
from ._spawn import Group, Loop, current_loop, open_group
from ._states import (
    AWAITING_RETRY,
    CANCELLED,
    COMPLETED,
    CRASHED,
    FAILED,
    NOT_READY,
    PAUSED,
    PENDING,
    RETRYING,
    RUNNING,
    TIMED_OUT,
    State,
    StateKind,
    StateType,
)
from ._task_run import (
    CALL,
    OK,
    SLEEP,
    TIMEOUT,
    UPSTREAM,
    TaskRun,
    crash_message,
    finish_cancelled,
    run_spawned,
)

if TYPE_CHECKING:
    pass

BODY = 4  # (BODY, args, kwargs) -> (OK|ERR|TIMEOUT, value)
#: Async children running at once per flow run; the rest wait in a backlog.
MAX_ASYNC_IN_FLIGHT = 10_000


class _FlowDeadline(BaseException):
    """Raised inside a sync flow body at its deadline (a BaseException, so that user code's
    ``except Exception`` does not swallow it)."""


@final
class FlowRun(Actor):
    """One run of a flow: the supervisor of the task runs it submits."""

    __slots__ = (
        "_async_running",
        "_backlog",
        "_children",
        "_closed",
        "_failed_children",
        "_group",
        "_idle",
        "_lock",
        "_loop_group",
        "_name",
        "_runner",
        "_stop_reason",
        "args",
        "flow",
        "kwargs",
        "log_prints",
        "run_count",
        "wait_for",
    )
    is_flow = True

    def __init__(
        self,
        flow: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: Actor | None,
        wait_for: Any = None,
    ) -> None:
        Actor.__init__(self, parent)
        self.flow = flow
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for
        self._name: str | None = None
        log_prints = flow.log_prints
        if log_prints is None:
            outer = _context.current_flow_run()
            log_prints = outer.log_prints if outer is not None else False
        self.log_prints: bool = log_prints
        self.run_count = 0
        self._runner: TaskRunner | None = None
        self._group: Group | None = None
        self._loop_group: LoopGroup | None = None
        self._children: set[TaskRun] = set()
        self._failed_children = 0
        self._idle: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._stop_reason: str | None = None
        self._async_running = 0
        self._backlog: deque[TaskRun] = deque()
        self.transition(PENDING)

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self.flow.run_name_for(self)
        return self._name

    @property
    def flow_run_id(self) -> Any:
        return self.id

    @property
    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = self.flow.bind(self.args, self.kwargs)
        return params

    # -- children -------------------------------------------------------------------------------
    def submit(self, run: TaskRun) -> None:
        """Take ``run`` as a child and start it where its body belongs."""
        if self._closed:
            raise RuntimeError(
                f"{self.label()} has finished: it cannot take new task runs ({run.name!r})"
            )
        if self._stop_reason is not None:
            run.send(Cancel(self._stop_reason))
        run.supervisor = self
        with self._lock:
            self._children.add(run)
        if run.task.is_async:
            group, loop = self._async_side()
            run.loop = loop
            if loop.on_loop_thread():
                self._start_async(run, group)
            else:
                loop.call_soon_threadsafe(self._start_async, run, group)
        else:
            self._submit_sync(run)

    def _start_async(self, run: TaskRun, group: Group) -> None:
        # On the loop thread. Beyond MAX_ASYNC_IN_FLIGHT, runs wait in a backlog as plain
        # objects (no task, no coroutine frame), so a huge map costs memory per run, not per task.
        if self._async_running >= MAX_ASYNC_IN_FLIGHT:
            self._backlog.append(run)
            return
        self._async_running += 1
        group.spawn(run_spawned(run))

    def async_slot_free(self, group_cancelled: bool) -> None:
        """Called on the loop thread when a spawned async child's task ends.

        A child cancelled by its host means the whole group is being cancelled (that is the only
        way a child receives an outside cancellation): the backlog is cancelled, not started.
        """
        self._async_running -= 1
        backlog = self._backlog
        if not backlog:
            return
        if not group_cancelled:
            group, _ = self._async_side()
            try:
                self._start_async(backlog.popleft(), group)
                return
            except RuntimeError:  # the group is shutting down
                pass
        self.cancel_children(self._stop_reason or "its flow run was cancelled")

    def _async_side(self) -> tuple[Group, Loop]:
        group, loop = self._group, self.loop
        if group is not None and loop is not None:
            return group, loop
        # A sync flow: its async children live in a group on the runtime loop, opened on demand.
        with self._lock:
            if self._loop_group is None:
                self._loop_group = LoopGroup()
        return self._loop_group, self._loop_group.loop  # type: ignore[return-value]

    def _runner_for_submit(self) -> TaskRunner:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._runner is None:
                    template = self.flow.task_runner
                    fresh = template.duplicate() if template is not None else ThreadPoolTaskRunner()
                    fresh.start()
                    self._runner = fresh
                runner = self._runner
        return runner

    def _submit_sync(self, run: TaskRun) -> None:
        runner = self._runner_for_submit()
        upstream: list[tuple[TaskRun, bool]] = []
        if run.wait_for is not None:
            collect(run.wait_for, upstream)
        collect(run.args, upstream)
        collect(run.kwargs, upstream)
        waiting = [r for r, _ in upstream if not r.done()]
        if not waiting:
            runner.submit(run)
            return
        # Hold the run back until its upstream runs are done, so that it never occupies a
        # worker thread while it waits.
        remaining = [len(waiting)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                runner.submit(run)

        for upstream_run in waiting:
            upstream_run.add_done_callback(one_done)

    def child_done(self, run: TaskRun) -> None:
        failed = not run.state.is_completed()
        with self._lock:
            self._children.discard(run)
            if failed:
                self._failed_children += 1
            if self._children or not self._idle:
                return
            idle, self._idle = self._idle, []
        for callback in idle:
            callback()

    def _on_idle(self, callback: Callable[[], None]) -> bool:
        """Register ``callback`` for when no child is in flight; ``False`` if none is now."""
        with self._lock:
            if not self._children:
                return False
            self._idle.append(callback)
            return True

    def cancel_children(self, reason: str) -> None:
        with self._lock:
            self._stop_reason = reason
            children = list(self._children)
            backlog = list(self._backlog)
            self._backlog.clear()
        for child in children:
            child.send(Cancel(reason))
        for run in backlog:
            finish_cancelled(run)

    def join_sync(self) -> None:
        event = threading.Event()
        if self._on_idle(event.set):
            with _pool.blocking_region():
                event.wait()

    async def join_async(self) -> None:
        loop = current_loop()
        event = loop.new_event()
        if self._on_idle(lambda: loop.call_soon(event.set)):
            await event.wait()

    def holds_resources(self) -> bool:
        return self._runner is not None or self._loop_group is not None

    def close(self) -> None:
        """After the last child: release the runner and the loop group."""
        self._closed = True
        if self._loop_group is not None:
            self._loop_group.close()
            self._loop_group = None
        if self._runner is not None:
            self._runner.shutdown()
            self._runner = None
        if self._failed_children and self.done() and self.state.is_completed():
            logger.warning(
                "%s is Completed, but %d task run(s) it submitted did not complete. As in "
                "Prefect, a flow's state follows its return value: return those futures (or "
                "raise) to make the flow's state reflect them.",
                self.label(),
                self._failed_children,
            )

    def interrupted(self, exc: BaseException) -> None:
        if self.done():
            return
        from ._task_run import _is_cancellation

        if _is_cancellation(exc):
            message = self._stop_reason or "Flow run was cancelled"
            self.transition(CANCELLED, message, CancelledRun(message))
        else:
            message = crash_message(exc)
            self.transition(CRASHED, message, CrashedRun(message))

    def statistics(self) -> Any:
        base = super().statistics()
        return SupervisorStatistics(
            state=base.state,
            transitions=base.transitions,
            children_in_flight=len(self._children),
            children_failed=self._failed_children,
        )


import attrs  # noqa: E402


@attrs.frozen
class SupervisorStatistics:
    state: str
    transitions: int
    children_in_flight: int
    children_failed: int


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

    if fr.wait_for is not None:
        upstream: list[tuple[TaskRun, bool]] = []
        collect(fr.wait_for, upstream)
        yield (UPSTREAM, [r for r, _ in upstream])
        for r, allowed in upstream:
            if not r.state.is_completed() and not (allowed and r.state.is_failed()):
                reason = f"Upstream task run '{r.id}' did not reach a 'COMPLETED' state."
                fr.transition(NOT_READY, reason, UpstreamTaskError(reason))
                fr.settle(fr.state)
                return

    while True:
        fr.run_count += 1
        fr.transition(RUNNING if fr.run_count == 1 else RETRYING)
        yield from _hooks(fr, flow.on_running_hooks)
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
            elif code == CALL:
                from ._task_run import call_sync

                try:
                    value = call_sync(op[1], *op[2])
                except Exception as exc:
                    thrown = exc  # the engine decides what a failing callable means
                    continue
            elif code == UPSTREAM:
                for run in op[1]:
                    run.wait_sync()
                value = None
            else:
                with _pool.blocking_region():
                    current_clock().sleep_sync(op[1])
                value = None
    except BaseException as exc:
        gen.close()
        fr.interrupted(exc)
        raise
    finally:
        _context.current_run.reset(token)
        fr.close()


def _async_raise(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )


def _body_sync(fr: FlowRun, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, Any]:
    flow = fr.flow
    timeout = flow.timeout_seconds
    printer = _context.print_target.set(_context.logger_for(fr)) if fr.log_prints else None
    guard = threading.Lock()
    in_body = [True]
    disarm: Callable[[], None] | None = None
    if timeout is not None:
        thread_id = threading.get_ident()

        def deadline() -> None:
            fr.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
            with guard:
                if in_body[0]:
                    _async_raise(thread_id, _FlowDeadline)

        disarm = call_later(timeout, deadline)
    try:
        try:
            try:
                result: tuple[int, Any] = (OK, flow.fn(*args, **kwargs))
            finally:
                with guard:
                    in_body[0] = False
                if disarm is not None:
                    disarm()
        except _FlowDeadline:
            result = (TIMEOUT, timeout)
        except Exception as exc:
            fr.cancel_children(f"its flow run failed: {type(exc).__name__}: {exc}")
            result = (2 if isinstance(exc, _FlowDeadline) else 1, exc)
        fr.join_sync()
    except _FlowDeadline:
        fr.join_sync()
        result = (TIMEOUT, timeout)
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
            elif code == CALL:
                try:
                    import inspect

                    value = op[1](*op[2])
                    if inspect.isawaitable(value):
                        value = await value
                except Exception as exc:
                    thrown = exc  # the engine decides what a failing callable means
                    continue
            elif code == UPSTREAM:
                for run in op[1]:
                    await run.wait_async()
                value = None
            else:
                await current_clock().sleep(op[1])
                value = None
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
                    result = (1, exc)
                await fr.join_async()
        if scope.cancelled_caught:
            fr.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
            with anyio.CancelScope(shield=True):
                await fr.join_async()
    except BaseException:
        fr.cancel_children("its flow run was cancelled")
        with anyio.CancelScope(shield=True):
            await fr.join_async()
        raise
    finally:
        fr._group = None
        if printer is not None:
            _context.print_target.reset(printer)
    return result


__all__ = ["FlowRun", "NotReadyError", "drive_flow_async", "drive_flow_sync"]
