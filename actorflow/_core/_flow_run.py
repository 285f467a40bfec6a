"""The FlowRun supervisor actor.

A flow run runs its body inside a supervision scope it owns, and spawns its children (submitted
task runs) into structures it owns: async children into a native task group it opens on its
event loop, sync children into its task runner's pool. It tracks the children in flight, never
the ones that finished, so memory follows the work in flight. When the body returns it waits for
every child; when the body raises, times out or is cancelled it cancels them; when it is
interrupted (Ctrl-C) it cancels what it can and abandons sync bodies it cannot interrupt, so that
control returns at once.

The flow run's decisions (parameters, retries, its final state by Prefect's rules) are its
engine, in :mod:`._flow_engine`.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast, final

from . import _context, _pool, _suspend
from ._actor import Actor, Cancel, logger, when_all_done
from ._bridge import LoopGroup, call_later, to_thread
from ._drive import ERR, OK, TIMEOUT, Effect, Engine, drive_async
from ._exceptions import FlowDeadlineInterrupt
from ._flow_engine import flow_engine
from ._interrupt import Interruptible
from ._resolve import collect, has_futures
from ._runner import TaskRunner, ThreadPoolTaskRunner
from ._spawn import Group, Loop, current_loop, is_cancellation
from ._specs import FlowSpec
from ._states import CRASHED, PENDING
from ._task_run import TaskRun

if TYPE_CHECKING:
    from ._statistics import SupervisorStatistics

__all__ = ["MAX_ASYNC_IN_FLIGHT", "FlowRun", "current_flow_run"]

#: Async children running at once per flow run. Later submissions wait in a backlog, in order,
#: as plain objects (no task, no coroutine) and start as running ones finish; children submitted
#: by a running child are never held back. Besides bounding memory, the cap keeps the number of
#: live objects per flow small, which keeps the garbage collector's full passes rare.
MAX_ASYNC_IN_FLIGHT = 1_000

#: What the body of a flow run returned: nothing yet (it raised, or has not returned).
NOT_RETURNED: Any = object()


@final
class _Subflows:
    """The subflow runs of a flow run with retries, by key (see ``earlier_subflow``)."""

    __slots__ = ("attempt", "calls", "runs")

    def __init__(self) -> None:
        self.attempt = -1
        self.calls: dict[str, int] = {}
        self.runs: dict[tuple[str, int], FlowRun] = {}


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
        "_interrupted",
        "_lingering",
        "_lock",
        "_loop_group",
        "_runner",
        "_stop_reason",
        "_subflows",
        "log_prints",
        "persist_result",
        "returned",
        "tags",
    )
    is_flow = True
    spec: FlowSpec

    def __init__(
        self,
        spec: FlowSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: _context.Run | None,
        wait_for: Any = None,
    ) -> None:
        #: The tags of ``with tags(...)`` blocks around the call.
        self.tags: frozenset[str] = _context.current_tags.get()
        outer = current_flow_run() if parent is not None else None
        log_prints = spec.log_prints
        if log_prints is None:
            log_prints = outer.log_prints if outer is not None else False
        self.log_prints: bool = log_prints
        persist = spec.persist_result
        if persist is None and outer is not None:
            persist = outer.persist_result
        #: The flow's ``persist_result``, or the innermost enclosing flow's that set one.
        self.persist_result: bool | None = persist
        #: What the body returned, futures replaced by their runs' states (see the engine).
        self.returned: Any = NOT_RETURNED
        self._runner: TaskRunner | None = None
        self._group: Group | None = None
        self._loop_group: LoopGroup | None = None
        self._children: set[TaskRun] = set()
        self._failed_children = 0
        self._idle: list[Callable[[], None]] = []
        # Sync bodies still running after their run ended (past a deadline): the flow waits.
        self._lingering = 0
        self._lock = threading.Lock()
        self._closed = False
        self._interrupted = False
        self._stop_reason: str | None = None
        self._async_running = 0
        self._backlog: deque[TaskRun] = deque()
        self._subflows: _Subflows | None = None
        Actor.__init__(self, spec, args, kwargs, parent, wait_for, PENDING)

    def earlier_subflow(self, spec: FlowSpec) -> tuple[Any, FlowRun | None]:
        """For a subflow this run's body calls: its key in this run (the flow's name and how
        many times this attempt called it before) and, when this run is a retry, the subflow
        run an earlier attempt made under that key, if it completed: as in Prefect, a retried
        parent reuses it rather than run it again. Only runs with retries keep the book."""
        if not self.spec.retries:
            return None, None
        book = self._subflows
        if book is None:
            book = self._subflows = _Subflows()
        if book.attempt != self.run_count:
            book.attempt = self.run_count
            book.calls.clear()
        n = book.calls[spec.name] = book.calls.get(spec.name, -1) + 1
        key = (spec.name, n)
        earlier = book.runs.get(key)
        if earlier is not None and earlier.spec is spec and earlier.state.is_completed():
            return key, earlier
        return key, None

    def record_subflow(self, key: Any, run: FlowRun) -> None:
        if key is not None and self._subflows is not None:
            self._subflows.runs[key] = run

    def prepare(self) -> None:
        make = self.spec.run_name
        if make is not None:
            self._name = self.named(make)  # once per run, at the call, as in Prefect

    @property
    def name(self) -> str:
        name = self._name
        if name is None:
            make = self.spec.run_name
            assert make is not None  # a flow's spec always names its runs
            name = self._name = self.named(make)
        return name

    @property
    def flow(self) -> Any:
        """The flow this is a run of (the object ``@flow`` made)."""
        return self.spec.owner

    @property
    def flow_run_id(self) -> Any:
        return self.id

    def run_context(self) -> _context.FlowRunContext:
        """Prefect's ``FlowRunContext`` of this run (one per run)."""
        context: _context.FlowRunContext | None = self._run_context
        if context is None:
            context = self._run_context = _context.FlowRunContext(self)
        return context

    @property
    def parameters(self) -> dict[str, Any]:
        return self.spec.bind(self.args, self.kwargs)

    def engine(self) -> Engine:
        return flow_engine(self)

    def cancel_reason(self, exc: BaseException) -> str:
        return self._stop_reason or "Flow run was cancelled"

    def end_hooks(self) -> list[tuple[Any, tuple[Any, ...]]]:
        state = self.state
        if not (state.is_crashed() or state.is_cancelled()):
            return []
        args = (self.spec.owner, self, state)
        return [(hook, args) for hook in self.spec.hooks_for(state.type)]

    # -- the body, supervised -------------------------------------------------------------------
    def invoke_sync(self, op: Effect) -> tuple[int, Any]:
        """Run the body on this thread. A deadline interrupts it; an interrupt (Ctrl-C) stops
        the children and returns control without waiting for bodies it cannot interrupt."""
        fn, args, kwargs = op[1], op[2], op[3]
        timeout = self.spec.timeout
        printer = _context.enter_print_scope(self)
        self._begin_attempt()
        body: Interruptible | None = None
        disarm: Callable[[], None] | None = None
        if timeout is not None:
            body = Interruptible(FlowDeadlineInterrupt)

            def deadline() -> None:
                self.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
                body.interrupt()

            disarm = call_later(timeout, deadline)
        try:
            try:
                try:
                    if body is None:
                        result: tuple[int, Any] = (OK, fn(*args, **kwargs))
                    else:
                        result = (OK, body.call(fn, *args, **kwargs))
                finally:
                    if disarm is not None:
                        disarm()
            except FlowDeadlineInterrupt as exc:
                if body is None or not isinstance(exc, body.signal):
                    raise  # an outer flow's deadline: not ours
                result = (TIMEOUT, timeout)
            except Exception as exc:
                self.cancel_children(f"its flow run failed: {type(exc).__name__}: {exc}")
                result = (ERR, exc)
            self.join_sync()
        except BaseException:
            self.interrupt_children("its flow run was interrupted")
            self.join_sync()
            raise
        finally:
            _context.leave_print_scope(printer)
            self._release()
        return result

    async def invoke_async(self, op: Effect) -> tuple[int, Any]:
        """Run the body in the caller's task, inside a task group this run owns for its async
        children and a cancel scope for its deadline. The body runs so that a blocking wait in
        it suspends it instead of blocking the loop (see :mod:`._suspend`)."""
        import anyio

        fn, args, kwargs = op[1], op[2], op[3]
        timeout = self.spec.timeout
        loop = self.loop = current_loop()
        printer = _context.enter_print_scope(self)
        self._begin_attempt()
        result: tuple[int, Any] = (TIMEOUT, timeout)
        try:
            # A deadline is a cancel scope; without one, none is needed.
            with (
                contextlib.nullcontext()
                if timeout is None
                else anyio.move_on_after(timeout) as scope
            ):
                async with loop.open_group() as group:
                    self._group = group
                    try:
                        result = (OK, await _suspend.suspendable_body(fn(*args, **kwargs), loop))
                    except Exception as exc:
                        self.cancel_children(f"its flow run failed: {type(exc).__name__}: {exc}")
                        result = (ERR, exc)
                    except BaseException:
                        timed_out = scope is not None and scope.cancel_called
                        self._cancel_children_elsewhere(
                            f"Flow run exceeded timeout of {timeout} second(s)"
                            if timed_out
                            else "its flow run was cancelled"
                        )
                        raise
                    await self.join_async()
            if scope is not None and scope.cancel_called:
                self.cancel_children(f"Flow run exceeded timeout of {timeout} second(s)")
                self._reap_unstarted()
                with anyio.CancelScope(shield=True):
                    await self.join_async()
                result = (TIMEOUT, timeout)
        except BaseException as exc:
            if is_cancellation(exc):
                self.cancel_children("its flow run was cancelled")
            else:
                # An interrupt (Ctrl-C on trio, SystemExit, a termination signal): as in a sync
                # flow, sync bodies still running are abandoned, not waited for.
                self.interrupt_children("its flow run was interrupted")
            self._reap_unstarted()
            with anyio.CancelScope(shield=True):
                await self.join_async()
            raise
        finally:
            self._group = None
            _context.leave_print_scope(printer)
            if self._runner is not None or self._loop_group is not None:
                # Shutting a runner down may block (joining threads, closing a cluster): never
                # on the caller's event loop.
                with anyio.CancelScope(shield=True):
                    await to_thread(self._release)
        return result

    def _begin_attempt(self) -> None:
        # A new attempt (first run or flow retry): children may be submitted again.
        with self._lock:
            self._stop_reason = None

    # -- children -------------------------------------------------------------------------------
    def submit(self, run: TaskRun, *, off_loop: bool = False) -> None:
        """Take ``run`` as a child and start it where its body belongs.

        ``off_loop`` puts an async child on the runtime loop rather than the flow's own, for a
        caller that must block on it from the flow's loop thread.
        """
        if self._closed:
            raise RuntimeError(
                f"{self.label()} has finished: it cannot take new task runs ({run.name!r})"
            )
        if self._stop_reason is not None:
            run.send(Cancel(self._stop_reason))
        run.supervisor = self
        try:
            if run.spec.is_async:
                self._submit_async(run, off_loop)
            else:
                with self._lock:
                    self._children.add(run)
                self._submit_sync(run)
        except BaseException as exc:
            # A runner that cannot start or take the run: the run ends here, not never.
            run.never_started(f"Could not start the task run: {type(exc).__name__}: {exc}")
            raise

    def _submit_async(self, run: TaskRun, off_loop: bool) -> None:
        group: Group | LoopGroup | None = self._group
        loop = self.loop
        if off_loop or group is None or loop is None:
            group, loop = self._loop_group_side()
        run.loop = loop
        # A child submitted by a running child skips the cap: the parent may wait on it, and a
        # backlog behind a full house of waiting parents would never drain. Nor does one that
        # the flow's loop thread is about to block on (off_loop): the runs it would wait behind
        # may live on that very loop.
        parent = run.parent
        capped = not off_loop and (parent is None or parent.is_flow)
        with self._lock:
            self._children.add(run)
            if capped and self._async_running >= MAX_ASYNC_IN_FLIGHT:
                run._backlogged = True
                self._backlog.append(run)
                return
            self._async_running += 1
            run._holds_slot = True
        if group is self._group and loop.on_loop_thread():
            self._start_here(group, run)  # the common case: an async flow submitting
        else:
            self._start_in(group, loop, run)

    def _start_in(self, group: Any, loop: Loop, run: TaskRun) -> None:
        """Start ``run`` (holding a slot) in ``group``: on the loop thread at once, else soon,
        in the submitter's context."""
        if isinstance(group, LoopGroup):
            group.start_soon(self._start_here, group.group, run)
        elif loop.on_loop_thread():
            self._start_here(group, run)
        else:
            loop.call_soon_in(contextvars.copy_context(), self._start_here, group, run)

    def _start_here(self, group: Any, run: TaskRun) -> None:
        # On the loop thread. Whatever goes wrong, the run ends here rather than stay Pending:
        # a group that takes no more children (it is shutting down) cancels it, anything else
        # crashes it.
        try:
            group.start(drive_async, run)
        except RuntimeError:
            run.never_started()
        except BaseException as exc:
            run.never_started(f"Could not start the task run: {type(exc).__name__}: {exc}")
            if not isinstance(exc, Exception):
                raise

    def _loop_group_side(self) -> tuple[LoopGroup, Loop]:
        # A sync flow's async children (and those an async flow must block on) live in a group
        # on the runtime loop, opened on demand.
        with self._lock:
            if self._loop_group is None:
                self._loop_group = LoopGroup()
            group = self._loop_group
        return group, group.loop

    def _runner_for_submit(self) -> TaskRunner:
        runner = self._runner
        if runner is None:
            with self._lock:
                if self._runner is None:
                    template = self.spec.task_runner
                    fresh = template.duplicate() if template is not None else ThreadPoolTaskRunner()
                    fresh.start()
                    self._runner = fresh
                runner = self._runner
        return runner

    def _submit_sync(self, run: TaskRun) -> None:
        runner = self._runner_for_submit()
        if run.wait_for is None and not has_futures(run.args, run.kwargs):
            runner.submit(run)
            return
        # Held back until its upstream runs are done, so that it never occupies a worker thread
        # while it waits.
        upstream: list[tuple[Actor, bool]] = []
        if run.wait_for is not None:
            collect(run.wait_for, upstream)
        collect(run.args, upstream)
        collect(run.kwargs, upstream)

        def ready() -> None:
            if run.pending_cancel() is not None:
                run.never_started()
                return
            try:
                runner.submit(run)
            except BaseException as exc:
                run.never_started(f"Could not start the task run: {type(exc).__name__}: {exc}")

        # A run among its own upstream runs fails at once in its engine: do not wait for it.
        when_all_done([r for r, _ in upstream if r is not run], ready)

    def child_ended(self, run: Any, host_cancelled: bool) -> None:
        """A child's driver is done, or it never started (the one completion path)."""
        failed = not run.completed_value()[0]
        idle: list[Callable[[], None]] = []
        following: TaskRun | None = None
        with self._lock:
            if run not in self._children:
                return  # abandoned earlier: already accounted for
            self._children.discard(run)
            if failed:
                self._failed_children += 1
            if run._holds_slot:
                run._holds_slot = False
                # A child cancelled by its host means the whole group is being cancelled: the
                # backlog is cancelled, not started.
                if self._backlog and not host_cancelled:
                    following = self._backlog.popleft()
                    following._backlogged = False
                    following._holds_slot = True  # it takes over this run's slot
                else:
                    self._async_running -= 1
            drain = host_cancelled and bool(self._backlog)
            if not self._children and not self._lingering and self._idle:
                idle, self._idle = self._idle, []
        for callback in idle:
            callback()
        if following is not None:
            self._start_backlogged(following)
        elif drain:
            self.cancel_children(self._stop_reason or "its flow run was cancelled")

    def promote(self, run: Any) -> None:
        """Start a backlogged ``run`` now, beyond the cap: someone waits for it, perhaps from
        behind the very runs that hold the slots."""
        with self._lock:
            if not run._backlogged:
                return
            run._backlogged = False
            self._backlog.remove(run)
            self._async_running += 1
            run._holds_slot = True
        self._start_backlogged(run)

    def _start_backlogged(self, run: Any) -> None:
        """Start a run taken off the backlog, in the task group of its loop; a run whose group
        is gone (the flow is ending) never starts."""
        loop = run.loop
        assert loop is not None
        group = self._group if loop is self.loop else self._loop_group
        if group is None:
            run.never_started()
        else:
            self._start_in(group, loop, run)

    def hold_open(self) -> Callable[[], None]:
        """Keep the flow run from ending until the returned function is called: for a sync body
        that may go on running after its run has ended (a task past its deadline)."""
        with self._lock:
            self._lingering += 1

        def release() -> None:
            with self._lock:
                self._lingering -= 1
                if self._children or self._lingering or not self._idle:
                    return
                idle, self._idle = self._idle, []
            for callback in idle:
                callback()

        return release

    def _on_idle(self, callback: Callable[[], None]) -> bool:
        """Register ``callback`` for when no child is in flight; ``False`` if none is now."""
        with self._lock:
            if not self._children and not self._lingering:
                return False
            self._idle.append(callback)
            return True

    def cancel_children(self, reason: str) -> None:
        with self._lock:
            self._stop_reason = reason
            children = list(self._children)
            backlog = list(self._backlog)
            self._backlog.clear()
            for run in backlog:
                run._backlogged = False
        for child in children:
            child.send(Cancel(reason))
        for run in backlog:
            run.never_started()

    def _cancel_children_elsewhere(self, reason: str) -> None:
        """The flow's task group is being cancelled: the children it does not hold (sync bodies
        queued for threads or processes, async children on the runtime loop) hear of it now,
        not once the group's own children have ended, so that no queued body starts meanwhile."""
        loop = self.loop
        with self._lock:
            self._stop_reason = reason
            elsewhere = [run for run in self._children if run.loop is not loop]
        for child in elsewhere:
            child.send(Cancel(reason))

    def interrupt_children(self, reason: str) -> None:
        """The flow was interrupted (Ctrl-C, SIGTERM): cancel the children, and abandon those
        running sync bodies, which cannot be interrupted; they end Crashed now, the flow does
        not wait for them, and whatever they do later is dropped."""
        self._interrupted = True
        self.cancel_children(reason)
        runner = self._runner
        with self._lock:
            children = list(self._children)
        if runner is not None:  # queued behind bodies that will not end soon: end them now
            for run in runner.withdraw(set(children)):
                run.never_started()
        message = f"Execution was aborted: {reason}; its body was left running"
        abandoned = [c for c in children if c.abandon(CRASHED, message, None)]
        if abandoned:
            for child in abandoned:
                self.child_ended(child, False)
            logger.warning(
                "%s: %d task run(s) with sync bodies still running were abandoned (Crashed)",
                self.label(),
                len(abandoned),
            )

    def _reap_unstarted(self) -> None:
        """After the flow's own task group has exited: end the children whose task the group
        cancelled before their first step (asyncio never runs such a coroutine at all)."""
        loop = self.loop
        with self._lock:
            stranded = [r for r in self._children if r.loop is loop and not r.done()]
        for run in stranded:
            run.never_started()

    def join_sync(self) -> None:
        event = threading.Event()
        if self._on_idle(event.set):
            with _pool.blocking_region():
                _pool.wait_event(event)

    async def join_async(self) -> None:
        loop = current_loop()
        event = loop.new_event()
        if self._on_idle(lambda: loop.call_soon(event.set)):
            await event.wait()

    def _release(self) -> None:
        """After an attempt's children are all done: release the runner and the loop group
        (a retry that submits again starts new ones)."""
        with self._lock:
            loop_group, self._loop_group = self._loop_group, None
            runner, self._runner = self._runner, None
        if loop_group is not None:
            loop_group.close()
        if runner is not None:
            # Interrupted: bodies abandoned on the runner's threads are not waited for.
            runner.shutdown(wait=not self._interrupted)

    def end_in(self, kind: Any, message: str | None = None, data: Any = None) -> None:
        self._closed = True  # its hooks run next: they cannot submit task runs
        Actor.end_in(self, kind, message, data)

    def driver_done(self, host_cancelled: bool = False) -> None:
        self._closed = True
        Actor.driver_done(self, host_cancelled)
        if self._failed_children and self.state.is_completed():
            logger.warning(
                "%s is Completed, but %d task run(s) it submitted did not complete. As in "
                "Prefect, a flow's state follows its return value: return those futures (or "
                "raise) to make the flow's state reflect them.",
                self.label(),
                self._failed_children,
            )

    def statistics(self) -> SupervisorStatistics:  # type: ignore[override]  # richer for flows
        from ._statistics import SupervisorStatistics

        base = super().statistics()
        return SupervisorStatistics(
            state=base.state,
            transitions=base.transitions,
            children_in_flight=len(self._children),
            children_failed=self._failed_children,
        )


#: ``_context.current_flow_run``, typed for the layers above, which know flow runs: the run it
#: finds is a flow run, and every flow run is a FlowRun. (Bound once: no cost per call.)
current_flow_run = cast("Callable[[], FlowRun | None]", _context.current_flow_run)
