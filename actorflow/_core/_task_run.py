"""The TaskRun actor and its engine.

The engine is a generator that makes every decision of a task run (resolve inputs, consult the
cache, run the body through its attempts, persist the result) and yields effects for what needs
waiting; any driver of :mod:`._drive` carries them out (see there).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, final

from . import _context, _interrupt, _pool, _suspend
from ._actor import Actor
from ._attempts import Verdict, attempts, run_hooks
from ._callables import is_bind_error
from ._drive import CALL, CRASH, ERR, INVOKE, OK, TIMEOUT, UPSTREAM, Effect, Engine
from ._exceptions import (
    CancelledRun,
    FlowDeadlineInterrupt,
    ParameterBindError,
    SerializationError,
    TaskRunTimeoutError,
)
from ._resolve import has_futures, resolve_inputs
from ._runtime import runtime
from ._spawn import current_loop
from ._states import (
    CACHED,
    CANCELLED,
    COMPLETED,
    CRASHED,
    FAILED,
    PENDING,
    RUNNING,
    TIMED_OUT,
    State,
)

if TYPE_CHECKING:
    import uuid

    from ._task_spec import TaskSpec

__all__ = ["TaskRun"]


class FlowOfRun(Protocol):
    """What a task run reads of the flow run it belongs to (a FlowRun, whose module is above
    this one: a flow run supervises task runs)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def persist_result(self) -> bool | None: ...
    @property
    def log_prints(self) -> bool: ...
    def hold_open(self) -> Callable[[], None]: ...


@final
class TaskRun(Actor):
    """One run of a task: an actor that owns its state machine and mailbox."""

    spec: TaskSpec

    __slots__ = (
        "_context_tags",
        "flow",
        "returned",
        "upstream",
    )

    def __init__(
        self,
        spec: TaskSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: _context.Run | None,
        flow: FlowOfRun | None,
        wait_for: Any = None,
        run_id: int | None = None,
    ) -> None:
        self.flow = flow
        #: What the body returned, when that is what a caller receives (a State it returned).
        self.returned: Any = None
        #: Ids of the runs whose futures this run received (its lineage).
        self.upstream: Sequence[Any] = ()
        self._context_tags = _context.current_tags.get()
        Actor.__init__(self, spec, args, kwargs, parent, wait_for, PENDING, run_id)

    def prepare(self) -> None:
        make = self.spec.run_name
        if make is not None:
            self._name = self.named(make)  # a bad template fails the call, as in Prefect

    @property
    def name(self) -> str:
        name = self._name
        if name is None:
            spec = self.spec
            name = self._name = (
                spec.name if self.flow is None else f"{spec.name}-{self._int_id & 0xFFF:03x}"
            )
        return name

    @property
    def task(self) -> Any:
        """The task this is a run of (the object ``@task`` made)."""
        return self.spec.owner

    @property
    def task_run_id(self) -> Any:
        return self.id

    def task_key(self) -> str:
        return self.spec.task_key()

    @property
    def parameters(self) -> dict[str, Any]:
        """The run's arguments bound to the task's parameter names, defaults included."""
        return self.spec.bind(self.args, self.kwargs)

    @property
    def flow_run_id(self) -> Any:
        """The id of the flow run this run belongs to (``None`` outside flows)."""
        return None if self.flow is None else self.flow.id

    def run_context(self) -> _context.TaskRunContext:
        """Prefect's ``TaskRunContext`` of this run (one per run)."""
        context: _context.TaskRunContext | None = self._run_context
        if context is None:
            context = self._run_context = _context.TaskRunContext(self)
        return context

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self.spec.tags) | self._context_tags

    # -- what drivers call ----------------------------------------------------------------------
    def engine(self) -> Engine:
        spec = self.spec
        args, kwargs = self.args, self.kwargs
        cache = spec.cache
        flow = self.flow
        if (
            self.wait_for is None
            and self.txn is None
            and not self._mailbox
            and not has_futures(args, kwargs)
            and (
                cache is None
                or (cache.persist is None and (flow is None or not flow.persist_result))
            )
        ):
            # Nothing to resolve, no cache to consult: straight to the attempts. Plain: nothing
            # around the body (no deadline, no print redirection), so a driver calls it inline.
            plain = (
                spec.timeout is None
                and not spec.suspends
                and spec.log_prints is not True
                and (spec.log_prints is False or flow is None or not flow.log_prints)
                and not (_context.print_redirected and _context.print_target.get() is not None)
            )
            return attempts(
                self, spec, (INVOKE, spec.fn, args, kwargs, plain), _judge, (None, args, kwargs)
            )
        return _engine(self)

    def invoke_sync(self, op: Effect) -> tuple[int, Any]:
        fn, args, kwargs = op[1], op[2], op[3]
        printer = _context.enter_print_scope(self)
        try:
            if self.spec.timeout is not None:
                return call_with_deadline(self, fn, args, kwargs, self.spec.timeout)
            if self.supervisor is None:  # nobody abandons a run that is not a child
                try:
                    return OK, fn(*args, **kwargs)
                except Exception as exc:
                    return ERR, exc
            self.enter_body()
            try:
                return OK, fn(*args, **kwargs)
            except Exception as exc:
                return ERR, exc
            finally:
                self.leave_body()
        finally:
            _context.leave_print_scope(printer)

    async def invoke_async(self, op: Effect) -> tuple[int, Any]:
        fn, args, kwargs = op[1], op[2], op[3]
        printer = _context.enter_print_scope(self)
        try:
            spec = self.spec
            timeout = spec.timeout
            if timeout is None:
                try:
                    if spec.suspends:
                        return OK, await _suspend.suspendable_body(
                            fn(*args, **kwargs), current_loop()
                        )
                    return OK, await fn(*args, **kwargs)
                except Exception as exc:
                    return ERR, exc
            import anyio

            outcome: tuple[int, Any] = (TIMEOUT, timeout)
            with anyio.move_on_after(timeout) as scope:
                try:
                    body = fn(*args, **kwargs)
                    if spec.suspends:
                        body = _suspend.suspendable_body(body, current_loop())
                    outcome = (OK, await body)
                except Exception as exc:
                    outcome = (ERR, exc)
            if scope.cancel_called:
                # Past its deadline: TimedOut, even if the body caught the cancellation and
                # returned (or raised something else) instead of letting it end the scope.
                return TIMEOUT, timeout
            return outcome
        finally:
            _context.leave_print_scope(printer)

    def cancel_reason(self, exc: BaseException) -> str:
        request = self.pending_cancel()
        if request is not None:
            return request.reason
        if isinstance(exc, FlowDeadlineInterrupt):
            return "Task run was cancelled: its flow run exceeded its timeout"
        return "Task run was cancelled by its host"


def _engine(run: TaskRun) -> Engine:
    """Every decision of a task run, from Pending to its end."""
    spec = run.spec
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
    cache = spec.cache
    slot = None
    if cache is not None:
        try:
            slot = cache.key_for(run, args, kwargs)
        except Exception as exc:
            run.transition(FAILED, f"Could not compute the cache key: {exc}", exc)
            return
        if slot is not None:
            try:
                if run.txn is not None:  # a SERIALIZABLE transaction takes the key first
                    yield (CALL, run.txn._lock_slot, (slot,))
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
                message = (
                    f"Could not read or lock the cache record {slot.path!r}: "
                    f"{type(exc).__name__}: {exc}"
                )
                run.transition(FAILED, message, exc)
                return
            if found:
                if run.txn is not None:
                    run.txn._cached()
                run.transition(RUNNING)
                run.transition(CACHED, None, value)
                if _context.lifecycle_logging(run):
                    _context.log_finished(run)
                if spec.on_completion:
                    yield from run_hooks(run, spec, spec.on_completion)
                return

    plain = spec.timeout is None and not spec.suspends and not _context.print_scope_needed(run)
    yield from attempts(
        run, spec, (INVOKE, spec.fn, args, kwargs, plain), _judge, (slot, args, kwargs)
    )
    txn = run.txn
    if txn is not None and (run._kind is None or run._kind.type is not COMPLETED.type):
        # Ended without a result: its transaction rolls back, and so does the one around it.
        try:
            yield (CALL, txn._run_failed, ())
        except Exception:
            _context.logger_for(run).exception("Rolling back the transaction of the run failed")


def _judge(run: TaskRun, outcome: tuple[int, Any], context: Any) -> Any:
    """What an attempt's outcome means for a task run (a Verdict, or a generator of one)."""
    code, value = outcome
    if code == OK:
        if type(value) is State:
            # A body that returns a State chooses its run's end; a Failed one is retried like a
            # raised exception, and a caller receives the State itself.
            run.returned = value
            return value.kind, value.message, value.data, value.is_failed()
        slot = context[0]
        if slot is not None or run.txn is not None:
            return _persist(run, slot, value)
        return COMPLETED, None, value, False
    if code == TIMEOUT:
        message = f"Task run exceeded timeout of {value} second(s)"
        error = TaskRunTimeoutError(f"Scope timed out after {value} second(s).")
        return TIMED_OUT, message, error, True
    if code == CRASH:
        return CRASHED, str(value), value, True
    if isinstance(value, TimeoutError):
        return TIMED_OUT, f"Task run failed due to timeout: {value!r}", value, True
    if is_bind_error(value):
        try:
            run.spec.bind(context[1], context[2])
        except ParameterBindError as bind_error:
            # Wrong arguments: the body never ran, and retrying cannot help.
            return FAILED, f"Task run encountered an exception {bind_error}", bind_error, False
    message = f"Task run encountered an exception {type(value).__name__}: {value}"
    return FAILED, message, value, True


def _persist(run: TaskRun, slot: Any, value: Any) -> Generator[Effect, Any, Verdict]:
    txn = run.txn
    if txn is not None:
        # Staged in the run's transaction: the record is written now, or (inside an explicit
        # transaction) when that commits; the commit or rollback hooks run then.
        if slot is not None and not txn.defers_write:
            verdict = yield from _write(run, slot, value)
            if verdict[0] is not COMPLETED:
                return verdict
        try:
            yield (CALL, txn._stage_run, (value, slot))
        except Exception as exc:
            message = f"Could not stage the result: {type(exc).__name__}: {exc}"
            return FAILED, message, exc, False
        return COMPLETED, None, value, False
    verdict = yield from _write(run, slot, value)
    return verdict


def _write(run: TaskRun, slot: Any, value: Any) -> Generator[Effect, Any, Verdict]:
    cache = run.spec.cache
    assert cache is not None  # a slot means a cache
    try:
        yield (CALL, cache.write, (slot, value))
    except SerializationError as exc:
        # As in Prefect: the run goes on and completes with its value, only not persisted.
        _context.logger_for(run).warning(
            "Encountered an error while serializing result for record %r: %s. Code execution "
            "will continue, but the result will not be persisted.",
            slot.path,
            exc,
        )
    except Exception as exc:
        # An OSError from a write (a full disk) names no file: say which record it was.
        message = (
            f"Could not persist the result to record {slot.path!r}: {type(exc).__name__}: {exc}"
        )
        return FAILED, message, exc, False
    return COMPLETED, None, value, False


# -- sync bodies with a deadline, or off the event loop ---------------------------------------
def call_with_deadline(
    run: TaskRun, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
) -> tuple[int, Any]:
    # The body runs on a pool thread while this thread waits until the deadline. At the
    # deadline the run is TimedOut and the body is interrupted at its next Python instruction
    # (a blocking call finishes first). Its flow run, if any, waits for the body to be over
    # before it ends, so no body outlives its flow.
    flow = run.flow
    pool = _pool.current_pool() or runtime.default_pool()
    return _interrupt.call_with_deadline(
        fn,
        args,
        kwargs,
        timeout,
        pool.submit,
        flow.hold_open() if flow is not None else None,
        _wait_blocked,
    )


def _wait_blocked(done: threading.Event, timeout: float) -> bool:
    with _pool.blocking_region():
        return _pool.wait_event(done, timeout)
