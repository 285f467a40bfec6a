"""The TaskRun actor and the one engine that drives it.

The engine is a generator: it makes every decision (resolve inputs, consult the cache, run the
body, retry, time out, run hooks) and *yields effects* for what needs waiting: wait for upstream
runs, invoke the body, sleep, call something that may block. Two small interpreters carry the
effects out: :func:`drive_sync` on a thread, :func:`drive_async` on an event loop (asyncio or
trio). There is one engine, not a sync and an async twin.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, final

from . import _context, _pool
from ._actor import Actor, logger
from ._callables import is_bind_error
from ._clock import current_clock
from ._exceptions import (
    CancelledRun,
    CrashedRun,
    FlowDeadlineInterrupt,
    ParameterBindError,
    TaskDeadlineInterrupt,
    TaskRunTimeoutError,
    UpstreamTaskError,
)
from ._interrupt import Interruptible
from ._resolve import NotReadyError, collect, has_futures, substitute
from ._retries import delay_for
from ._states import (
    AWAITING_RETRY,
    CACHED,
    CANCELLED,
    COMPLETED,
    CRASHED,
    FAILED,
    NOT_READY,
    PENDING,
    RETRYING,
    RUNNING,
    TIMED_OUT,
    State,
    StateType,
)

if TYPE_CHECKING:
    from ._flow_run import FlowRun
    from ._spawn import Group

# The core sees a task through the attributes it reads (fn, is_async, retries, hooks, cache...);
# the Task class itself lives above the core.
Task = Any

# Effects the engine yields, as tuples whose first item is one of these codes.
UPSTREAM = 0  # (UPSTREAM, [runs]) -> None, once every run is done
INVOKE = 1  # (INVOKE, fn, args, kwargs) -> (OK|ERR|TIMEOUT|CRASH, value)
SLEEP = 2  # (SLEEP, seconds) -> None
CALL = 3  # (CALL, fn, args) -> fn(*args), awaited if it returns an awaitable

# Outcomes of INVOKE. CRASH (value: a CrashedRun) is for runners whose body ran elsewhere and was
# lost with its host (a dead worker process): Crashed, or retried if the task has retries left.
OK, ERR, TIMEOUT, CRASH = 0, 1, 2, 3


@final
class TaskRun(Actor):
    """One run of a task: an actor that owns its state machine and mailbox."""

    __slots__ = (
        "_context_tags",
        "_name",
        "args",
        "flow",
        "kwargs",
        "run_count",
        "task",
        "upstream",
        "wait_for",
    )

    def __init__(
        self,
        task: Task,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: Actor | None,
        flow: FlowRun | None,
        wait_for: Any = None,
    ) -> None:
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for
        self.flow = flow
        self._name: str | None = None
        self.run_count = 0
        #: Ids of the runs whose futures this run received (its lineage).
        self.upstream: Sequence[Any] = ()
        self._context_tags = _context.current_tags.get()
        if task.task_run_name is not None:
            self._name = task.run_name_for(self)  # errors surface at the call, as in Prefect
        Actor.__init__(self, parent, PENDING)

    @property
    def name(self) -> str:
        name = self._name
        if name is None:
            name = self._name = self.task.run_name_for(self)
        return name

    @property
    def task_run_id(self) -> Any:
        return self.id

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's arguments bound to the task's parameter names."""
        params: dict[str, Any] = self.task.bind(self.args, self.kwargs)
        return params

    @property
    def tags(self) -> frozenset[str]:
        own: frozenset[str] = self.task.tags
        return own | self._context_tags

    def state_kind_name(self) -> str:
        return self._kind.name if self._kind else "None"

    def cancel_will_take_effect(self) -> bool:
        """After a Cancel message: will the run end Cancelled?"""
        kind = self._kind
        if self.done() or (kind is not None and kind.final):  # final, maybe running hooks
            return bool(kind and kind.type is StateType.CANCELLED)
        # Not started yet, or async (interruptible): yes. A sync body already running: no.
        return kind is PENDING or self.loop is not None

    def interrupted(self, exc: BaseException) -> None:
        """The driver was interrupted by ``exc`` (cancellation or a BaseException)."""
        kind = self._kind
        if self.done() or (kind is not None and kind.final):
            return  # already final (its hooks were interrupted): the state stands
        if kind is not None and kind.type is StateType.CANCELLING:
            self.transition(CANCELLED, "Task run was cancelled", exc)
            return
        if _is_cancellation(exc):
            request = self.pending_cancel()
            if request:
                message = request.reason
            elif isinstance(exc, FlowDeadlineInterrupt):
                message = "Task run was cancelled: its flow run exceeded its timeout"
            else:
                message = "Task run was cancelled by its host"
            self.transition(CANCELLED, message, CancelledRun(message))
        else:
            message = crash_message(exc)
            self.transition(CRASHED, message, CrashedRun(message))


def crash_message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "Execution was aborted by an interrupt signal."
    if isinstance(exc, SystemExit):
        return "Execution was aborted by Python system exit call."
    return f"Execution was interrupted by an unexpected exception: {type(exc).__name__}: {exc}"


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.CancelledError, FlowDeadlineInterrupt)):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_cancellation(inner) for inner in exc.exceptions)
    return type(exc).__name__ == "Cancelled" and type(exc).__module__.startswith("trio")


def engine(run: TaskRun) -> Generator[tuple[Any, ...], Any, None]:
    """Every decision of a task run, from Pending to a final state."""
    task = run.task
    args, kwargs = run.args, run.kwargs

    if run.wait_for is not None or has_futures(args, kwargs):
        request = run.pending_cancel()
        if request is not None:  # cancelled before it started: do not wait
            run.transition(CANCELLED, request.reason, CancelledRun(request.reason))
            return
        resolved = yield from resolve_inputs(run, args, kwargs, run.wait_for)
        if resolved is None:
            return
        args, kwargs = resolved

    request = run.pending_cancel() if run._mailbox else None
    if request is not None:
        run.transition(CANCELLED, request.reason, CancelledRun(request.reason))
        return

    # The cache (None: not cached, at no cost). ``slot`` names this run's record: look in memory,
    # then storage; on a miss, wait for the run of this process computing the key or become it
    # (``claim``), then take the key's lock shared with other processes and look again
    # (``acquire``). Locks are released when the run ends, whatever the end.
    cache = task.cache
    slot = None
    if cache is not None:
        try:
            slot = cache.key_for(run, args, kwargs)
        except Exception as exc:
            run.transition(FAILED, f"Could not compute the cache key: {exc}", exc)
            return
        if slot is not None:
            try:
                found, value = cache.recall(slot)  # records kept in memory: no I/O
                if not found:
                    found, value = yield (CALL, cache.read, (slot,))
                while not found:
                    computing = cache.claim(run, slot)
                    if computing is None:
                        found, value = yield (CALL, cache.acquire, (slot,))
                        break
                    yield (UPSTREAM, [computing])
                    found, value = yield (CALL, cache.read, (slot,))
            except Exception as exc:
                run.transition(FAILED, f"Could not read the cache: {exc}", exc)
                return
            if found:
                run.transition(RUNNING)
                run.transition(CACHED, "Result found in the cache", value)
                if task.on_completion_hooks:
                    yield from _hooks(run, task.on_completion_hooks)
                return

    fn = task.fn
    while True:
        run.run_count += 1
        run.transition(RUNNING if run.run_count == 1 else RETRYING)
        if task.on_running_hooks:
            yield from _hooks(run, task.on_running_hooks)
        outcome, value = yield (INVOKE, fn, args, kwargs)
        if outcome is OK:
            if type(value) is State:
                # A body that returns a State chooses its run's final state.
                run.transition(value.kind, value.message, value.data)
                hooks = task.on_completion_hooks if value.is_completed() else task.on_failure_hooks
                yield from _hooks(run, hooks if value.is_final() else ())
                return
            if slot is not None:
                try:
                    yield (CALL, cache.write, (slot, value))  # type: ignore[union-attr]
                except Exception as exc:
                    message = f"Could not persist the result: {type(exc).__name__}: {exc}"
                    run.transition(FAILED, message, exc)
                    yield from _hooks(run, task.on_failure_hooks)
                    return
            run.transition(COMPLETED, None, value)
            if task.on_completion_hooks:
                yield from _hooks(run, task.on_completion_hooks)
            return
        if outcome is TIMEOUT:
            kind, message = TIMED_OUT, f"Task run exceeded timeout of {value} second(s)"
            value = TaskRunTimeoutError(f"Scope timed out after {value} second(s).")
        elif outcome is CRASH:
            kind, message = CRASHED, str(value)
        elif isinstance(value, TimeoutError):
            kind, message = TIMED_OUT, f"Task run failed due to timeout: {value!r}"
        elif is_bind_error(value) and (bind_error := _bind_error(task, args, kwargs)):
            # Wrong arguments: the body never ran, and retrying cannot help.
            run.transition(FAILED, f"Task run encountered an exception {bind_error}", bind_error)
            return
        else:
            kind = FAILED
            message = f"Task run encountered an exception {type(value).__name__}: {value}"
        if run.run_count <= task.retries and (
            yield from _should_retry(run, kind.at(0, message, value))
        ):
            seconds = delay_for(
                task.retry_delay_seconds, task.retries, run.run_count, task.retry_jitter_factor
            )
            if seconds > 0:
                run.transition(AWAITING_RETRY, f"Retrying in {seconds:g} seconds: {message}")
                yield (SLEEP, seconds)
            else:
                logger.debug("%s: retrying at once after: %s", run.label(), message)
            continue
        run.transition(kind, message, value)
        if task.on_failure_hooks and kind is not CRASHED:
            yield from _hooks(run, task.on_failure_hooks)
        return


def resolve_inputs(
    actor: Actor, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
) -> Generator[tuple[Any, ...], Any, tuple[tuple[Any, ...], dict[str, Any]] | None]:
    """Wait for the runs whose futures are in ``args``, ``kwargs`` and ``wait_for``, then put
    their results in place of the futures; for task and flow engines alike.

    Returns the resolved ``(args, kwargs)``, or ``None`` when an upstream run did not complete
    (outside ``allow_failure``): ``actor`` is then NotReady, and its waiters are released.
    """
    data: list[tuple[TaskRun, bool]] = []
    collect(args, data)
    collect(kwargs, data)
    ordering: list[tuple[TaskRun, bool]] = []
    if wait_for is not None:
        collect(wait_for, ordering)
    if data or ordering:
        if isinstance(actor, TaskRun):
            actor.upstream = [upstream.id for upstream, _ in data]
        yield (UPSTREAM, [upstream for upstream, _ in data + ordering])
    try:
        for upstream, allowed in ordering:
            if not allowed and not upstream.state.is_completed():
                raise NotReadyError(upstream)
        return substitute(args), substitute(kwargs)
    except NotReadyError as exc:
        message = f"Upstream task run '{exc.upstream.id}' did not reach a 'COMPLETED' state."
        actor.transition(NOT_READY, message, UpstreamTaskError(message))
        actor.settle(actor.state)
        return None


def _bind_error(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception | None:
    try:
        task.bind(args, kwargs)
    except ParameterBindError as exc:
        return exc
    return None


def _should_retry(run: TaskRun, state: State[Any]) -> Generator[tuple[Any, ...], Any, bool]:
    condition = run.task.retry_condition_fn
    if condition is None:
        return True
    try:
        return bool((yield (CALL, condition, (run.task, run, state))))
    except Exception:
        logger.exception("retry_condition_fn of %s raised; not retrying", run.label())
        return False


def _hooks(run: TaskRun, hooks: tuple[Any, ...]) -> Generator[tuple[Any, ...], Any, None]:
    state = run.state
    for hook in hooks:
        try:
            yield (CALL, hook, (run.task, run, state))
        except Exception:
            logger.exception(
                "hook %r of %s raised; the run's state stays %s",
                getattr(hook, "__name__", hook),
                run.label(),
                state.name,
            )


# -- the sync interpreter ----------------------------------------------------------------------
Invoker = Callable[[TaskRun, Any, tuple[Any, ...], dict[str, Any]], tuple[int, Any]]


def drive_sync(run: TaskRun, invoke: Invoker | None = None) -> TaskRun:
    """Drive ``run`` to the end on this thread.

    ``invoke(run, fn, args, kwargs) -> (OK|ERR|TIMEOUT, value)`` runs the body; the default calls
    it on this thread. Runners that execute bodies elsewhere (processes, Dask) pass their own.
    """
    if invoke is None:
        invoke = _invoke_sync
    gen = engine(run)
    token = _context.current_run.set(run)
    run.hold()
    value: Any = None
    thrown: Exception | None = None
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                return run
            thrown = None
            code = op[0]
            if code == INVOKE:
                value = invoke(run, op[1], op[2], op[3])
            else:
                value, thrown = common_effect_sync(op)
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        raise
    finally:
        _context.current_run.reset(token)
        run.release()


def common_effect_sync(op: tuple[Any, ...]) -> tuple[Any, Exception | None]:
    """Carry out CALL, UPSTREAM or SLEEP on this thread, for any engine.

    Returns ``(value, None)``, or ``(None, exc)`` when a called function raised: the engine
    decides what a failing callable means, so the exception is thrown back into it.
    """
    code = op[0]
    if code == CALL:
        try:
            return call_sync(op[1], *op[2]), None
        except Exception as exc:
            return None, exc
    if code == UPSTREAM:
        for upstream in op[1]:
            upstream.wait_sync()
        return None, None
    with _pool.blocking_region():  # SLEEP
        current_clock().sleep_sync(op[1])
    return None, None


async def common_effect_async(op: tuple[Any, ...]) -> tuple[Any, Exception | None]:
    """Carry out CALL, UPSTREAM or SLEEP on the running event loop, for any engine."""
    code = op[0]
    if code == CALL:
        try:
            value = op[1](*op[2])
            if inspect.isawaitable(value):
                value = await value
            return value, None
        except Exception as exc:
            return None, exc
    if code == UPSTREAM:
        for upstream in op[1]:
            await upstream.wait_async()
        return None, None
    await current_clock().sleep(op[1])  # SLEEP
    return None, None


def call_sync(fn: Any, *args: Any) -> Any:
    """Call ``fn``; an async function is run to completion on the runtime's loop."""
    result = fn(*args)
    if inspect.isawaitable(result):
        from ._bridge import run_coroutine_sync

        return run_coroutine_sync(result)
    return result


def _invoke_sync(
    run: TaskRun, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int, Any]:
    task = run.task
    printer = _print_scope(run)
    try:
        timeout = task.timeout_seconds
        if timeout is None:
            try:
                return OK, fn(*args, **kwargs)
            except Exception as exc:
                return ERR, exc
        return _invoke_with_deadline(run, fn, args, kwargs, timeout)
    finally:
        if printer is not None:
            _context.print_target.reset(printer)


def _wants_print_scope(run: TaskRun) -> bool:
    if not _context.print_redirected:
        return False  # no run ever asked for log_prints: print goes where it always goes
    setting = run.task.log_prints
    if setting is None and run.flow is not None:
        setting = run.flow.log_prints
    return bool(setting) or _context.print_target.get() is not None


def _print_scope(run: TaskRun) -> Any:
    """Point ``print`` at the run's logger, or away from an outer run's; a token or None."""
    # A task's own setting wins; unset, it follows its flow's.
    setting = run.task.log_prints
    if setting is None and run.flow is not None:
        setting = run.flow.log_prints
    if setting:
        return _context.print_target.set(_context.logger_for(run))
    if _context.print_target.get() is not None:
        return _context.print_target.set(None)
    return None


def _invoke_with_deadline(
    run: TaskRun, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
) -> tuple[int, Any]:
    # The body runs on a pool thread while this thread waits until the deadline. At the
    # deadline the run is TimedOut and the body is interrupted at its next Python instruction
    # (a blocking call finishes first). Its flow run, if any, waits for the body to be over
    # before it ends, so no body outlives its flow.
    done = threading.Event()
    box: list[tuple[int, Any]] = []
    body = Interruptible(TaskDeadlineInterrupt)
    flow = run.flow
    release = flow.hold_open() if flow is not None else None

    def work() -> None:
        try:
            box.append((OK, body.call(fn, *args, **kwargs)))
        except body.signal:
            pass  # its run is TimedOut already
        except BaseException as exc:  # delivered to the waiting thread
            box.append((ERR, exc))
        finally:
            done.set()
            if release is not None:
                release()

    from ._bridge import default_pool

    pool = _pool.current_pool() or default_pool()
    try:
        pool.submit(work)
    except BaseException:
        if release is not None:
            release()
        raise
    with _pool.blocking_region():
        finished = done.wait(timeout)
    if not finished or not box:
        body.interrupt()
        return TIMEOUT, timeout
    outcome, value = box[0]
    if outcome == ERR and not isinstance(value, Exception):
        raise value
    return outcome, value


# -- the async interpreter ---------------------------------------------------------------------
async def drive_async(run: TaskRun, spawned: str | None = None) -> TaskRun:
    """Drive ``run`` to the end on the running event loop (asyncio or trio).

    ``spawned`` names the backend when ``run`` is a submitted child driven in a task of its own
    (see :func:`spawn_run`): a Cancel in its mailbox then interrupts it wherever it waits, and
    its supervisor is told when the task ends.
    """
    if spawned == "asyncio":
        run._wake = asyncio.current_task()  # a Cancel message cancels this task
    gen = engine(run)
    token = _context.current_run.set(run)
    run.hold()
    value: Any = None
    thrown: Exception | None = None
    group_cancelled = False
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                return run
            thrown = None
            if op[0] == INVOKE:
                if run.task.timeout_seconds is None and not (
                    _context.print_redirected and _wants_print_scope(run)
                ):
                    # The common case, inline: no timeout scope, no print redirection.
                    try:
                        value = (OK, await op[1](*op[2], **op[3]))
                    except Exception as exc:
                        value = (ERR, exc)
                else:
                    value = await _invoke_async(run, op[1], op[2], op[3])
            else:
                value, thrown = await common_effect_async(op)
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        if spawned is None:
            raise
        if _is_cancellation(exc):
            if spawned == "asyncio":
                # Swallow only our own cancellation; a cancelled host must see it.
                if run.pending_cancel() is not None and run._wake.uncancel() == 0:
                    return run
                group_cancelled = True
            else:  # trio: the run's own scope (see _spawned_trio) swallows its cancellation
                group_cancelled = not run._wake.cancel_called
            raise
        # An interrupt (SystemExit, KeyboardInterrupt) in a body: the run is Crashed already.
        # On the shared runtime loop it must not travel further: it would stop that loop for
        # every flow. Elsewhere it reaches the flow's host, as in Prefect.
        from ._bridge import on_runtime_thread

        if not on_runtime_thread():
            raise
        return run
    finally:
        _context.current_run.reset(token)
        if spawned is None:
            run.release()
        else:
            run._wake = None  # let the finished task go
            # The supervisor hears of the end of the run and of its task at once.
            supervisor, run.supervisor = run.supervisor, None
            run.release()
            supervisor.async_child_ended(run, group_cancelled)


async def _invoke_async(
    run: TaskRun, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[int, Any]:
    task = run.task
    printer = _print_scope(run)
    try:
        timeout = task.timeout_seconds
        if timeout is None:
            try:
                return OK, await fn(*args, **kwargs)
            except Exception as exc:
                return ERR, exc
        import anyio

        outcome: tuple[int, Any] = (TIMEOUT, timeout)
        with anyio.move_on_after(timeout) as scope:
            try:
                outcome = (OK, await fn(*args, **kwargs))
            except Exception as exc:
                outcome = (ERR, exc)
        if scope.cancel_called:
            # Past its deadline: TimedOut, even if the body caught the cancellation and
            # returned (or raised something else) instead of letting it end the scope.
            return TIMEOUT, timeout
        return outcome
    finally:
        if printer is not None:
            _context.print_target.reset(printer)


def spawn_run(group: Group, run: TaskRun) -> Any:
    """Start submitted async ``run`` in ``group``, on the group's loop thread."""
    assert run.loop is not None
    if run.loop.backend == "asyncio":
        return group.spawn(drive_async, run, "asyncio")
    return group.spawn(_spawned_trio, run)


async def _spawned_trio(run: TaskRun) -> None:
    # A trio task cannot be cancelled by itself: the run gets a cancel scope of its own.
    with sys.modules["trio"].CancelScope() as scope:
        run._wake = scope
        await drive_async(run, "trio")


def finish_cancelled(run: TaskRun) -> None:
    """A queued run that never started: record that it was cancelled."""
    if not run.done():
        request = run.pending_cancel()
        run.transition(CANCELLED, request.reason if request else "Task run was cancelled")
