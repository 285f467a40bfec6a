"""What every run actor shares: identity, a validated and recorded state machine, a mailbox, and
completion that any thread or event loop can wait on.

A run's state changes only through :meth:`Actor.transition`, called by the code that drives the
run. Other parties talk to it through its mailbox (:meth:`Actor.send`); the driver reads the
mailbox at its transition points and the mailbox's wake-up hook interrupts a running async body.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from . import _pool
from ._exceptions import BlockingWaitOnEventLoop
from ._records import TransitionEvent, observers
from ._spawn import Loop, current_loop
from ._states import INITIAL_CODES, State, StateKind, StateType, check_transition

if TYPE_CHECKING:
    import uuid

logger = logging.getLogger("actorflow")

# Run ids: a random 64-bit prefix per process and a counter. Unique across processes without the
# cost of uuid4 per run; formatted as a UUID only when asked for.
_prefix = int.from_bytes(os.urandom(8)) << 64
_counter = itertools.count(1)


def _reset_ids() -> None:
    global _prefix, _counter
    _prefix = int.from_bytes(os.urandom(8)) << 64
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_ids)


#: ``_final`` value meaning "the last entry of the history" (its State is built on demand).
_LAST = object()

# One lock guards registration of done-callbacks against completion, for every run.
_done_lock = threading.Lock()


@attrs.frozen
class Cancel:
    """Mailbox message: stop this run, recording ``reason``."""

    reason: str


@attrs.frozen
class ActorStatistics:
    state: str
    transitions: int
    mailbox: int
    waiters: int


class Actor:
    """Base of TaskRun and FlowRun. Subclasses set ``is_flow`` and provide ``name``."""

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_final",
        "_held",
        "_history",
        "_hold",
        "_int_id",
        "_kind",
        "_mailbox",
        "_observers",
        "_wake",
        "loop",
        "parent",
        "supervisor",
    )
    is_flow = False

    def __init__(self, parent: Actor | None, initial: StateKind | None = None) -> None:
        """Subclasses set their own attributes first: the ``initial`` state is recorded (and
        observed) last, when the run can already name itself."""
        self._int_id = _prefix | next(_counter)
        self.parent = parent
        self._final: State[Any] | object | None = None  # _LAST: the last history entry
        # While its driver still has work after the final state (hooks), completion is held:
        # waiters are released, and the supervisor told, only when the driver is done.
        self._hold = False
        self._held: Any = None
        self._callbacks: list[Callable[[], None]] | None = None
        self._mailbox: deque[Any] | None = None
        #: What interrupts the driver of a running async body: its asyncio Task or trio
        #: CancelScope (anything with ``cancel()``), called on :attr:`loop`.
        self._wake: Any = None
        #: The event loop that drives this run when it runs async code, else None.
        self.loop: Loop | None = None
        #: The flow run supervising this run as a submitted child, told when it finishes.
        self.supervisor: Any = None
        # Flat: kind, timestamp_ns, message, data for each state, oldest first. No tuple per
        # transition outlives the call, which keeps long-lived objects (and GC work) down.
        self._observers = observers.get()
        self._kind: StateKind | None = initial
        if initial is None:
            self._history: list[Any] = []
            return
        if initial.code not in INITIAL_CODES:
            check_transition(self.label(), None, initial)
        ts = time.time_ns()
        self._history = [initial, ts, None, None]
        if self._observers:
            self._emit(None, initial.at(ts))

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

    # -- state machine --------------------------------------------------------------------------
    def transition(self, kind: StateKind, message: str | None = None, data: Any = None) -> None:
        """Move to ``kind``, validated against the transition table and recorded."""
        old = self._kind
        if kind.code not in (INITIAL_CODES if old is None else old.next_codes):
            check_transition(self.label(), old, kind)
        ts = time.time_ns()
        self._history.extend((kind, ts, message, data))
        self._kind = kind
        if self._observers:
            self._emit(old, kind.at(ts, message, data))
        if kind.final:
            if self._hold:
                self._held = _LAST
            else:
                self._complete(_LAST)

    def _emit(self, old: StateKind | None, state: State[Any]) -> None:
        parent = self.parent
        flow = parent
        while flow is not None and not flow.is_flow:
            flow = flow.parent
        event = TransitionEvent(
            run_id=str(self.id),
            run_kind="flow" if self.is_flow else "task",
            run_name=self.name,
            task_key=getattr(getattr(self, "task", None), "task_key", None),
            parent_id=None if parent is None else str(parent.id),
            flow_run_id=None if flow is None else str(flow.id),
            from_state=None if old is None else old.name,
            state=state,
        )
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception("a run observer raised; the run goes on")

    @property
    def state(self) -> State[Any]:
        final = self._final
        if final is not None and final is not _LAST:
            return final  # type: ignore[return-value]
        history = self._history
        if not history:
            raise RuntimeError(f"{self.label()} has no state yet")
        kind, ts, message, data = history[-4:]
        state: State[Any] = kind.at(ts, message, data)
        if final is _LAST:
            # Built on first use: most runs' final state is never looked at as a value.
            self._final = state
        return state

    @property
    def state_kind(self) -> StateKind | None:
        return self._kind

    def history(self) -> list[State[Any]]:
        """Every state this run has been in, oldest first."""
        h = self._history
        return [h[i].at(h[i + 1], h[i + 2], h[i + 3]) for i in range(0, len(h), 4)]

    def completed_value(self) -> tuple[bool, Any]:
        """``(True, result)`` if the run completed, else ``(False, None)``; builds no State."""
        kind = self._kind
        if kind is not None and kind.type is StateType.COMPLETED and self._final is not None:
            return True, self._history[-1]
        return False, None

    def done(self) -> bool:
        return self._final is not None

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
        supervisor = self.supervisor
        if supervisor is not None:
            supervisor.child_done(self)

    def settle(self, state: State[Any]) -> None:
        """End a run that stays in a non-final state (NotReady): waiters are released."""
        if self._hold:
            self._held = state
        else:
            self._complete(state)

    def hold(self) -> None:
        """Called by a driver before it starts: hold completion until :meth:`release`."""
        self._hold = True

    def release(self) -> None:
        """Called by the driver when it is done: complete the run if it reached its end."""
        self._hold = False
        held, self._held = self._held, None
        if held is not None:
            self._complete(held)

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
        """Block until the run has finished; ``False`` if ``timeout`` passed first."""
        if self._final is not None:
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
            return event.wait(timeout)

    async def wait_async(self) -> None:
        """Wait, without blocking the event loop, until the run has finished."""
        if self._final is not None:
            return
        loop = current_loop()
        event = loop.new_event()
        self.add_done_callback(lambda: loop.call_soon(event.set))
        await event.wait()

    # -- mailbox --------------------------------------------------------------------------------
    def send(self, message: Any) -> None:
        """Post ``message`` to the run's mailbox and wake its driver.

        Only the first Cancel wakes it: one interruption is all a run needs, and a second
        ``Task.cancel()`` would look, to the run's task, like a cancellation by its host.
        """
        with _done_lock:
            mailbox = self._mailbox
            if mailbox is None:
                mailbox = self._mailbox = deque()
            first = isinstance(message, Cancel) and not any(isinstance(m, Cancel) for m in mailbox)
            mailbox.append(message)
        wake, loop = self._wake, self.loop
        if first and wake is not None and loop is not None:
            loop.call_soon(wake.cancel)

    def pending_cancel(self) -> Cancel | None:
        mailbox = self._mailbox
        if mailbox:
            for message in mailbox:
                if isinstance(message, Cancel):
                    return message
        return None

    def statistics(self) -> ActorStatistics:
        return ActorStatistics(
            state=self._kind.name if self._kind else "None",
            transitions=len(self._history) // 4,
            mailbox=len(self._mailbox or ()),
            waiters=len(self._callbacks or ()),
        )
