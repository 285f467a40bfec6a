"""What every run actor shares: identity, a validated and recorded state machine, a mailbox, and
completion that any thread or event loop can wait on.

A run's state changes only through :meth:`Actor.transition`, called by the run's driver. Other
parties talk to it through its mailbox (:meth:`Actor.send`); the driver reads the mailbox at its
transition points, and a Cancel interrupts a running async body through its loop.

Completion has one path. A driver holds its run (:meth:`Actor.hold`) while it works, so that
waiters are released only when the driver is done (hooks included), and it ends with
:meth:`Actor.driver_done`, which releases the waiters and tells the run's supervisor: whatever
drove the run (an event loop, a worker thread, a remote worker's callbacks) and whether it ever
started.
"""

from __future__ import annotations

import concurrent.futures
import logging
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from time import time_ns
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from . import _context, _pool, _runtime, _suspend
from ._exceptions import (
    BlockingWaitOnEventLoop,
    CancelledRun,
    CrashedRun,
    FlowDeadlineInterrupt,
    TerminationSignal,
)
from ._records import event_for, observers, sinks
from ._runtime import runtime
from ._spawn import Loop, current_loop, is_cancellation
from ._states import (
    CANCELLED,
    CRASHED,
    INITIAL_CODES,
    PENDING,
    State,
    StateKind,
    StateType,
    check_transition,
    transition_allowed,
)

if TYPE_CHECKING:
    import uuid

    from ._specs import RunSpec
    from ._statistics import ActorStatistics

logger = logging.getLogger("actorflow")

#: ``_final`` value meaning "the last entry of the history" (its State is built on demand).
_LAST = object()

# One lock guards completion against registration of done-callbacks and against abandonment,
# for every run. Made anew in a forked child (a thread of the parent may have held it).
_done_lock = threading.Lock()


def _new_lock() -> None:
    global _done_lock
    _done_lock = threading.Lock()


runtime.at_fork(_new_lock)


class Supervisor(Protocol):
    """What a run tells the supervisor that owns it."""

    def child_ended(self, run: Any, host_cancelled: bool) -> None:
        """``run``'s driver is done (or it never started); ``host_cancelled``: its task was
        cancelled by its host, i.e. the whole group is being cancelled."""

    def promote(self, run: Any) -> None:
        """Start ``run`` now if it is being held back: someone waits for it."""


@attrs.frozen
class Cancel:
    """Mailbox message: stop this run, recording ``reason``."""

    reason: str


class Actor:
    """Base of TaskRun and FlowRun: one run of a spec, with its call's arguments. Subclasses set
    ``is_flow`` and provide ``name``."""

    spec: RunSpec

    __slots__ = (
        "__weakref__",
        "_abandoned",
        "_backlogged",
        "_callbacks",
        "_final",
        "_held",
        "_history",
        "_hold",
        "_holds_slot",
        "_in_body",
        "_int_id",
        "_kind",
        "_mailbox",
        "_name",
        "_observers",
        "_run_context",
        "_wake",
        "args",
        "kwargs",
        "loop",
        "parent",
        "queued_item",
        "run_count",
        "spec",
        "supervisor",
        "txn",
        "wait_for",
    )
    is_flow = False

    def __init__(
        self,
        spec: RunSpec,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        parent: _context.Run | None,
        wait_for: Any = None,
        initial: StateKind | None = None,
        run_id: int | None = None,
    ) -> None:
        """Subclasses set their own attributes first: the ``initial`` state is recorded (and
        observed) last, when the run can already name itself. ``run_id`` is given for a run
        whose id was taken elsewhere (a background run, made when it was queued)."""
        self.spec = spec
        self.args = args
        self.kwargs = kwargs
        self.wait_for = wait_for
        self._name: str | None = None
        self._run_context: Any = None
        self.run_count = 0
        if run_id is None:
            run_id = _runtime._prefix | next(_runtime._counter)  # as new_id(), inline
        self._int_id = run_id
        if not _context.console_ready:
            _context.ensure_console()
        self.parent = parent
        self._final: State[Any] | object | None = None  # _LAST: the last history entry
        self._hold = False
        self._held: Any = None
        self._callbacks: list[Callable[[], None]] | None = None
        self._mailbox: deque[Any] | None = None
        #: What interrupts the driver of a running async body (its asyncio Task or trio
        #: CancelScope), set by the loop that spawned it.
        self._wake: Any = None
        #: Whether a sync body is running on a thread (see :meth:`abandon`).
        self._in_body = False
        self._abandoned = False
        #: Whether its supervisor holds it back, or counts it in, its cap on async children.
        self._backlogged = False
        self._holds_slot = False
        #: The event loop that drives this run when it runs async code, else None.
        self.loop: Loop | None = None
        #: Its work item in a pool's queue, while a sync run waits there for a thread.
        self.queued_item: list[Any] | None = None
        #: The supervisor of this run as a submitted child, told when its driver is done.
        self.supervisor: Supervisor | None = None
        #: The transaction this run stages its result in (a task run's own; a flow run's
        #: implicit one), set above the core (``actorflow/_transactions``), else None.
        self.txn: Any = None
        # Flat: kind, timestamp_ns, message, data for each state, oldest first. No tuple per
        # transition outlives the call, which keeps long-lived objects (and GC work) down.
        self._observers = observers.get()
        self._kind: StateKind | None = None
        self._history: list[Any] = []
        if self.spec.custom_run_name:
            self.prepare()
        if initial is None:
            return
        if initial.code not in INITIAL_CODES:
            check_transition(self.label(), None, initial)
        ts = time_ns()
        self._kind = initial
        self._history = [initial, ts, None, None]
        if self._observers:
            self._emit(None, initial.at(ts, None, None, self._int_id))
        if sinks:
            self._sink(None, initial, ts, None, None)

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> uuid.UUID:
        import uuid  # here, not at import time: uuid imports platform, which is slow to load

        return uuid.UUID(int=self._int_id)

    @property
    def name(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def label(self) -> str:
        return f"{'flow' if self.is_flow else 'task'} run {self.name!r}"

    def prepare(self) -> None:
        """Called once the run has its identity, before its first state is recorded, when its
        spec names runs its own way (a subclass names the run here)."""

    def named(self, make: Callable[[Any], str]) -> str:
        """``make(self)``, the run's name, computed with the run as the current run (a name
        function may read ``actorflow.runtime.task_run``)."""
        token = _context.current_run.set(self)
        try:
            return make(self)
        finally:
            _context.current_run.reset(token)

    def task_key(self) -> str | None:
        """The key of the task this run belongs to (``None`` for flow runs)."""
        return None

    # -- state machine --------------------------------------------------------------------------
    def transition(self, kind: StateKind, message: str | None = None, data: Any = None) -> None:
        """Move to ``kind``, validated against the transition table and recorded."""
        old = self._kind
        if kind.code not in (INITIAL_CODES if old is None else old.next_codes):
            check_transition(self.label(), old, kind)
        ts = time_ns()
        self._history.extend((kind, ts, message, data))
        self._kind = kind
        if self._observers:
            self._emit(old, kind.at(ts, message, data, self._int_id))
        if sinks:
            for sink in sinks:  # inline: this is every transition's path when a journal is on
                try:
                    sink(self, old, kind, ts, message, data)
                except Exception:
                    logger.exception("a process-wide run observer raised; the run goes on")
        if kind.final:
            if self._hold:
                self._held = _LAST
            else:
                self._complete(_LAST)

    def _sink(
        self, old: StateKind | None, kind: StateKind, ts: int, message: str | None, data: Any
    ) -> None:
        for sink in sinks:
            try:
                sink(self, old, kind, ts, message, data)
            except Exception:
                logger.exception("a process-wide run observer raised; the run goes on")

    def _emit(self, old: StateKind | None, state: State[Any]) -> None:
        event = event_for(self, old, state)
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception(
                    "run observer %s raised on the transition of %s to %s; the run goes on",
                    getattr(observer, "__qualname__", None) or repr(observer),
                    self.label(),
                    state.name,
                )

    @property
    def state(self) -> State[Any]:
        final = self._final
        if final is not None and final is not _LAST:
            return final  # type: ignore[return-value]  # a State: _final holds State | _LAST
        history = self._history
        if not history:
            raise RuntimeError(f"{self.label()} has no state yet")
        kind, ts, message, data = history[-4:]
        state: State[Any] = kind.at(ts, message, data, self._int_id)
        if final is _LAST:
            # Built on first use: most runs' final state is never looked at as a value.
            self._final = state
        return state

    @property
    def state_name(self) -> str | None:
        """The name of the run's current state (Prefect's ``task_run.state_name``)."""
        return self._kind.name if self._kind else None

    def history(self) -> list[State[Any]]:
        """Every state this run has been in, oldest first."""
        h = self._history
        run_id = self._int_id
        return [h[i].at(h[i + 1], h[i + 2], h[i + 3], run_id) for i in range(0, len(h), 4)]

    def completed_value(self) -> tuple[bool, Any]:
        """``(True, result)`` if the run completed, else ``(False, None)``; builds no State."""
        kind = self._kind
        if kind is not None and kind.type is StateType.COMPLETED and self._final is not None:
            return True, self._history[-1]
        return False, None

    def done(self) -> bool:
        return self._final is not None

    def reached_end(self) -> bool:
        """Whether the run's state is final (its driver may still be running hooks)."""
        kind = self._kind
        return self._final is not None or (kind is not None and kind.final)

    def end_in(self, kind: StateKind, message: str | None = None, data: Any = None) -> None:
        """Record the state an engine ends the run in."""
        self.transition(kind, message, data)
        if not kind.final:  # a body chose it (a State it returned): the run stays there
            self.settle(self.state)

    def cancel_reason(self, exc: BaseException) -> str:
        """The message of a run cancelled by ``exc`` (subclasses say more)."""
        return f"{'Flow' if self.is_flow else 'Task'} run was cancelled"

    def interrupted(self, exc: BaseException) -> None:
        """The driver was interrupted by ``exc`` (cancellation or a BaseException)."""
        kind = self._kind
        if self.reached_end():
            return  # already final (its hooks were interrupted): the state stands
        if kind is not None and kind.type is StateType.CANCELLING:
            self.transition(
                CANCELLED, f"{'Flow' if self.is_flow else 'Task'} run was cancelled", exc
            )
        elif is_cancellation(exc) or isinstance(exc, FlowDeadlineInterrupt):
            message = self.cancel_reason(exc)
            self.transition(CANCELLED, message, CancelledRun(message))
        else:
            message = crash_message(exc)
            self.transition(CRASHED, message, CrashedRun(message))

    def end_hooks(self) -> list[tuple[Any, tuple[Any, ...]]]:
        """The hooks to call, with their arguments, after :meth:`interrupted` ended the run:
        a flow's ``on_crashed`` or ``on_cancellation`` (tasks have none)."""
        return []

    def never_started(self, reason: str | None = None) -> None:
        """End a run whose driver never started (cancelled while queued, or its start failed):
        it is Cancelled (or Crashed, given a reason), then ends like any driven run."""
        if not self.reached_end():
            if reason is None:
                request = self.pending_cancel()
                message = request.reason if request else f"{self.label()} was cancelled"
                self.transition(CANCELLED, message, CancelledRun(message))
            else:
                self.transition(CRASHED, reason, CrashedRun(reason))
        self.driver_done()

    # -- completion -----------------------------------------------------------------------------
    def _complete(self, state: State[Any] | object) -> None:
        with _done_lock:
            self._final = state
            callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    logger.exception("a done-callback of %s raised", self.label())

    def settle(self, state: State[Any]) -> None:
        """End a run that stays in a non-final state (NotReady): waiters are released."""
        if self._hold:
            self._held = state
        else:
            self._complete(state)

    def hold(self) -> None:
        """Called by a driver before it starts: completion waits for :meth:`driver_done`."""
        self._hold = True

    def driver_done(self, host_cancelled: bool = False) -> None:
        """Called once by whatever drove the run, when it is done (or by whoever decided it
        never starts): waiters are released, then the supervisor is told."""
        self._hold = False
        held, self._held = self._held, None
        if held is not None:
            self._complete(held)
        supervisor, self.supervisor = self.supervisor, None
        if supervisor is not None:
            supervisor.child_ended(self, host_cancelled)

    def waited_on(self) -> None:
        """Someone is about to wait for this run: a supervisor holding it back (in its backlog
        of async children) starts it now, so the waiter cannot wait behind the very runs that
        may be waiting for it."""
        supervisor = self.supervisor
        if supervisor is not None and self._backlogged:
            supervisor.promote(self)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the run has finished (now, if it already has)."""
        with _done_lock:
            if self._final is None:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        callback()

    def wait_sync(self, timeout: float | None = None) -> bool:
        """Block until the run has finished; ``False`` if ``timeout`` passed first.

        Inside an async flow's body, the body is suspended instead, and its loop goes on.
        """
        if self._final is not None:
            return True
        self.waited_on()
        if _suspend.suspendable():
            return _suspend.wait_for_runs([self], timeout)
        item = self.queued_item
        if item is not None and timeout is None:
            # A pool worker about to wait for a run still queued in its own pool runs it here.
            pool = _pool.current_pool()
            if pool is not None and pool.steal(item) and self._final is not None:
                return True
        loop = self.loop
        if loop is not None and loop.on_loop_thread():
            raise BlockingWaitOnEventLoop(
                f"{self.label()} runs on this thread's event loop, so blocking on it here would "
                "deadlock: use `await future` (or `await future.wait_async()`) in async code."
            )
        event = threading.Event()
        self.add_done_callback(event.set)
        with _pool.blocking_region():
            return _pool.wait_event(event, timeout)

    async def wait_async(self) -> None:
        """Wait, without blocking the event loop, until the run has finished."""
        if self._final is not None:
            return
        self.waited_on()
        loop = current_loop()
        event = loop.new_event()
        self.add_done_callback(lambda: loop.call_soon(event.set))
        await event.wait()

    # -- a sync body that cannot be waited for -------------------------------------------------
    def enter_body(self) -> None:
        """A sync driver starts the body on its thread: from now on it may be abandoned."""
        self._in_body = True

    def leave_body(self) -> bool:
        """The body returned: ``True`` if the run was abandoned meanwhile (its outcome is then
        dropped, and its driver stops)."""
        with _done_lock:
            self._in_body = False
            return self._abandoned

    def abandon(self, kind: StateKind, message: str, data: Any) -> bool:
        """End a run whose sync body is running and will not be waited for (its flow was
        interrupted): it moves to ``kind`` now, its waiters are released, and whatever the body
        does later is dropped. ``False`` if the run is not in a body (its driver decides)."""
        with _done_lock:
            if not self._in_body or self._abandoned or self.reached_end():
                return False
            old = self._kind
            allowed = transition_allowed(old, kind)
            if allowed:
                self._abandoned = True
                ts = time_ns()
                self._history.extend((kind, ts, message, data))
                self._kind = kind
        if not allowed:
            check_transition(self.label(), old, kind)  # raises, naming the run
        if self._observers:
            self._emit(old, kind.at(ts, message, data, self._int_id))
        if sinks:
            self._sink(old, kind, ts, message, data)
        self._complete(_LAST)
        return True

    def cancel_unstarted_body(self) -> bool:
        """Called by a runner about to start this run's body elsewhere (a worker process):
        ``True`` if a Cancel is waiting, and the run then ends Cancelled now, as if abandoned
        (the runner does not start the body; whatever outcome it reports is dropped)."""
        request = self.pending_cancel()
        if request is None:
            return False
        self.abandon(CANCELLED, request.reason, CancelledRun(request.reason))
        return True

    # -- mailbox --------------------------------------------------------------------------------
    def send(self, message: Any) -> None:
        """Post ``message`` to the run's mailbox and wake its driver.

        Only the first Cancel wakes it: one interruption is all a run needs, and a second one
        would look, to the run's task, like a cancellation by its host.
        """
        with _done_lock:
            mailbox = self._mailbox
            if mailbox is None:
                mailbox = self._mailbox = deque()
            first = isinstance(message, Cancel) and not any(isinstance(m, Cancel) for m in mailbox)
            mailbox.append(message)
        loop = self.loop
        if first and loop is not None and self._wake is not None:
            loop.call_soon(loop.cancel_run, self)

    def cancel_will_take_effect(self) -> bool:
        """After a Cancel message: will the run end Cancelled?"""
        kind = self._kind
        if self.reached_end():  # final, perhaps still running hooks
            return bool(kind and kind.type is StateType.CANCELLED)
        loop = self.loop
        if loop is not None and self._wake is not None and not loop.on_loop_thread():
            # Its driver runs on another thread's loop, where the Cancel lands at the loop's
            # next turn: the run may end by itself before then. Ask there, after the Cancel.
            return _cancelled_on_loop(self, loop)
        # Not started yet, or async (interruptible): yes. A sync body already running: no.
        return kind is PENDING or loop is not None

    def pending_cancel(self) -> Cancel | None:
        mailbox = self._mailbox
        if mailbox:
            for message in mailbox:
                if isinstance(message, Cancel):
                    return message
        return None

    def statistics(self) -> ActorStatistics:
        from ._statistics import ActorStatistics

        return ActorStatistics(
            state=self.state_name or "None",
            transitions=len(self._history) // 4,
            mailbox=len(self._mailbox or ()),
            waiters=len(self._callbacks or ()),
        )


def crash_message(exc: BaseException) -> str:
    """The message of a run crashed by ``exc`` (Prefect's wording)."""
    if isinstance(exc, KeyboardInterrupt):
        return "Execution was aborted by an interrupt signal."
    if isinstance(exc, TerminationSignal):
        return f"Execution was aborted by a termination signal ({signal.Signals(exc.signal).name})."
    if isinstance(exc, SystemExit):
        return "Execution was aborted by Python system exit call."
    if isinstance(exc, TerminationSignal):
        return f"Execution was aborted by a termination signal: {exc}."
    return f"Execution was interrupted by an unexpected exception: {type(exc).__name__}: {exc}"


def when_all_done(runs: Iterable[Actor], callback: Callable[[], None]) -> None:
    """Call ``callback()`` once every run in ``runs`` has finished (at once if all have)."""
    waiting = [run for run in runs if not run.done()]
    if not waiting:
        callback()
        return
    remaining = [len(waiting)]
    lock = threading.Lock()

    def one_done() -> None:
        with lock:
            remaining[0] -= 1
            ready = remaining[0] == 0
        if ready:
            callback()

    for run in waiting:
        run.add_done_callback(one_done)


def _cancelled_on_loop(run: Actor, loop: Loop) -> bool:
    """Whether ``run`` ends Cancelled, asked on its loop after a Cancel sent from elsewhere."""
    answer: concurrent.futures.Future[bool] = concurrent.futures.Future()

    def check() -> None:  # on the loop, after the Cancel was delivered
        kind = run._kind
        answer.set_result(not run.reached_end() or bool(kind and kind.type is StateType.CANCELLED))

    try:
        loop.call_soon_threadsafe(check)
    except RuntimeError:  # its loop has closed: so has the run
        return run.state.is_cancelled()
    with _pool.blocking_region():
        return answer.result()
