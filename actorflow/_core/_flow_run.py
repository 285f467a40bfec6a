"""The FlowRun supervisor actor.

A flow run spawns its children (submitted task runs) into structures it owns: async children
into a native task group on the flow's event loop, sync children into its task runner's pool. It
tracks the children in flight, never the ones that finished, so memory follows the work in
flight. When the body returns it waits for every child; when the body raises, times out or is
cancelled it cancels them (sync bodies already running cannot be interrupted and are waited for).

The flow run's decisions (parameters, retries, the final state by Prefect's rules) are one engine
generator in :mod:`._flow_engine`, carried out by a sync and an async interpreter.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, final

import attrs

from . import _context, _pool
from ._actor import Actor, Cancel, logger
from ._bridge import LoopGroup
from ._exceptions import (
    CancelledRun,
    CrashedRun,
)
from ._resolve import collect, has_futures
from ._runner import TaskRunner, ThreadPoolTaskRunner
from ._spawn import Group, Loop, current_loop
from ._states import (
    CANCELLED,
    CRASHED,
    PENDING,
)
from ._task_run import (
    TaskRun,
    crash_message,
    finish_cancelled,
    spawn_run,
)

#: Async children running at once per flow run. Later submissions wait in a backlog, in order,
#: as plain objects (no task, no coroutine) and start as running ones finish; children submitted
#: by a running child are never held back. Besides bounding memory, the cap keeps the number of
#: live objects per flow small, which keeps the garbage collector's full passes rare.
MAX_ASYNC_IN_FLIGHT = 1_000


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
        "_lingering",
        "_lock",
        "_loop_group",
        "_name",
        "_runner",
        "_stop_reason",
        "args",
        "flow",
        "kwargs",
        "log_prints",
        "persist_result",
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
        persist = flow.persist_result
        if persist is None:
            outer = _context.current_flow_run() if parent is not None else None
            persist = outer.persist_result if outer is not None else None
        #: The flow's ``persist_result``, or the innermost enclosing flow's that set one.
        self.persist_result: bool | None = persist
        self.run_count = 0
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
        self._stop_reason: str | None = None
        self._async_running = 0
        self._backlog: deque[TaskRun] = deque()
        Actor.__init__(self, parent, PENDING)

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
            if run.task.is_async:
                group, loop = self._group, self.loop
                if off_loop or group is None or loop is None:
                    group, loop = self._loop_group_side()
                run.loop = loop
                # A child submitted by a running child skips the cap: the parent may wait on it,
                # and a backlog behind a full house of waiting parents would never drain.
                # Nor does one that the flow's loop thread is about to block on (off_loop): the
                # runs it would wait behind may live on that very loop.
                parent = run.parent
                nested = off_loop or (parent is not None and not parent.is_flow)
                if threading.get_ident() == loop.thread_id:
                    self._start_async(run, group, nested)
                else:
                    with self._lock:
                        self._children.add(run)
                    loop.call_soon_threadsafe(self._start_async, run, group, nested)
            else:
                with self._lock:
                    self._children.add(run)
                self._submit_sync(run)
        except BaseException as exc:
            # A runner that cannot start or take the run: the run ends here, not never.
            _crash_unstarted(run, exc)
            raise

    def _start_async(self, run: TaskRun, group: Group, nested: bool = False) -> None:
        # On the loop thread. Beyond MAX_ASYNC_IN_FLIGHT, runs wait in a backlog as plain
        # objects (no task, no coroutine frame), so a huge map costs memory per run, not per task.
        with self._lock:
            self._children.add(run)
            if self._async_running >= MAX_ASYNC_IN_FLIGHT and not nested:
                self._backlog.append(run)
                return
            self._async_running += 1
        try:
            spawn_run(group, run)
        except BaseException as exc:
            with self._lock:
                self._async_running -= 1
            if isinstance(exc, RuntimeError):  # the group is shutting down
                finish_cancelled(run)
            else:  # whatever it was, the run ends here rather than stay Pending
                _crash_unstarted(run, exc)
            if not isinstance(exc, Exception):
                raise

    def async_child_ended(self, run: TaskRun, group_cancelled: bool) -> None:
        """Called on the loop thread when a spawned async child's task ends, its run finished
        (and its waiters released): the bookkeeping of :meth:`child_done` and of the in-flight
        cap, in one critical section.

        A child cancelled by its host means the whole group is being cancelled (that is the only
        way a child receives an outside cancellation): the backlog is cancelled, not started.
        """
        failed = not run.completed_value()[0]
        idle: list[Callable[[], None]] = []
        with self._lock:
            self._children.discard(run)
            if failed:
                self._failed_children += 1
            following = self._backlog.popleft() if self._backlog and not group_cancelled else None
            if following is None:
                self._async_running -= 1
            drain = group_cancelled and bool(self._backlog)
            if not self._children and not self._lingering and self._idle:
                idle, self._idle = self._idle, []
        for callback in idle:
            callback()
        if following is not None:  # it takes over the slot this run held
            loop = following.loop
            assert loop is not None
            if threading.get_ident() == loop.thread_id:
                self._spawn_in_slot(following)
            else:  # it lives on the other loop (the flow's own, or the runtime's)
                loop.call_soon_threadsafe(self._spawn_in_slot, following)
        elif drain:
            self.cancel_children(self._stop_reason or "its flow run was cancelled")

    def _spawn_in_slot(self, run: TaskRun) -> None:
        # On ``run``'s loop thread: start a backlog run in a slot already counted for it.
        group = self._group if run.loop is self.loop else self._loop_group
        try:
            if group is None:
                raise RuntimeError("the flow run's task group is closed")
            spawn_run(group, run)
        except Exception:  # the group is shutting down
            with self._lock:
                self._async_running -= 1
            finish_cancelled(run)

    def reap_unstarted(self) -> None:
        """After the flow's own task group has exited: end the children whose task the group
        cancelled before its first step (asyncio never runs such a coroutine at all)."""
        loop = self.loop
        with self._lock:
            stranded = [r for r in self._children if r.loop is loop and not r.done()]
            self._async_running -= len(stranded)
        for run in stranded:
            finish_cancelled(run)

    def _loop_group_side(self) -> tuple[Group, Loop]:
        # A sync flow's async children (and those an async flow must block on) live in a group
        # on the runtime loop, opened on demand.
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
        if run.wait_for is None and not has_futures(run.args, run.kwargs):
            runner.submit(run)
            return
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
                try:
                    runner.submit(run)
                except BaseException as exc:
                    _crash_unstarted(run, exc)

        for upstream_run in waiting:
            upstream_run.add_done_callback(one_done)

    def child_done(self, run: TaskRun) -> None:
        failed = not run.completed_value()[0]
        with self._lock:
            self._children.discard(run)
            if failed:
                self._failed_children += 1
            if self._children or self._lingering or not self._idle:
                return
            idle, self._idle = self._idle, []
        for callback in idle:
            callback()

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

    def begin_attempt(self) -> None:
        """A new attempt (first run or flow retry): children may be submitted again."""
        with self._lock:
            self._stop_reason = None

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
        kind = self._kind
        if self.done() or (kind is not None and kind.final):
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


def _crash_unstarted(run: TaskRun, exc: BaseException) -> None:
    if not run.done():
        message = f"Could not start the task run: {type(exc).__name__}: {exc}"
        run.transition(CRASHED, message, CrashedRun(message))


@attrs.frozen
class SupervisorStatistics:
    state: str
    transitions: int
    children_in_flight: int
    children_failed: int
