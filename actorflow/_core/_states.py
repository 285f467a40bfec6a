"""Run states: the nine state types, the named states on top of them, and the transition table.

A :class:`State` is an immutable value. Runs record their history compactly as
``(StateKind, timestamp_ns, message, data)`` tuples and build :class:`State` values on demand, so
the per-transition cost on the hot path is one tuple and one table lookup.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from ._exceptions import (
    CancelledRun,
    CrashedRun,
    FailedRun,
    InvalidStateTransition,
    PausedRun,
    UnfinishedRun,
)
from ._spawn import current_backend

if TYPE_CHECKING:
    import datetime

R = TypeVar("R")


class StateType(enum.StrEnum):
    """The type of a state; named states (``Cached``, ``TimedOut``, ...) refine one of these.

    As in Prefect, a type equals its value (``StateType.COMPLETED == "COMPLETED"``)."""

    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"

    def __repr__(self) -> str:
        return f"StateType.{self.name}"

    def __str__(self) -> str:
        return f"StateType.{self.name}"


FINAL_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


_CODES = {t: i for i, t in enumerate(StateType)}


class StateKind:
    """A state type with a name: the compact form a run's history is recorded in.

    Kinds are constants; ``code``, ``final`` and ``next_codes`` make the per-transition checks a
    set lookup on small ints.
    """

    __slots__ = ("code", "final", "name", "next_codes", "type")

    def __init__(self, type: StateType, name: str) -> None:
        self.type = type
        self.name = name
        self.code = _CODES[type]
        self.final = type in FINAL_TYPES
        self.next_codes: frozenset[int] = frozenset()  # filled in from the table below

    def at(
        self, timestamp_ns: int, message: str | None = None, data: Any = None, run_id: int = 0
    ) -> State[Any]:
        """This kind as the state of the run ``run_id``, at ``timestamp_ns``."""
        return State(self.type, self.name, timestamp_ns, message, data, run_id=run_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateKind) and other.type is self.type and other.name == self.name

    def __hash__(self) -> int:
        return hash((self.code, self.name))

    def __repr__(self) -> str:
        return f"StateKind({self.type.value}, {self.name!r})"


SCHEDULED = StateKind(StateType.SCHEDULED, "Scheduled")
LATE = StateKind(StateType.SCHEDULED, "Late")
AWAITING_RETRY = StateKind(StateType.SCHEDULED, "AwaitingRetry")
PENDING = StateKind(StateType.PENDING, "Pending")
NOT_READY = StateKind(StateType.PENDING, "NotReady")
RUNNING = StateKind(StateType.RUNNING, "Running")
RETRYING = StateKind(StateType.RUNNING, "Retrying")
COMPLETED = StateKind(StateType.COMPLETED, "Completed")
CACHED = StateKind(StateType.COMPLETED, "Cached")
FAILED = StateKind(StateType.FAILED, "Failed")
TIMED_OUT = StateKind(StateType.FAILED, "TimedOut")
CANCELLING = StateKind(StateType.CANCELLING, "Cancelling")
CANCELLED = StateKind(StateType.CANCELLED, "Cancelled")
CRASHED = StateKind(StateType.CRASHED, "Crashed")
PAUSED = StateKind(StateType.PAUSED, "Paused")

_T = StateType
# Which state types may follow which. ``None`` is "no state yet". Renaming within a type (Pending to
# NotReady, Running to Retrying) is allowed where the pair is listed. Final types lead nowhere.
_ALLOWED: dict[StateType | None, frozenset[StateType]] = {
    None: frozenset({_T.SCHEDULED, _T.PENDING}),
    _T.SCHEDULED: frozenset(
        {_T.SCHEDULED, _T.PENDING, _T.RUNNING, _T.CANCELLED, _T.CRASHED, _T.FAILED}
    ),
    _T.PENDING: frozenset(
        {_T.PENDING, _T.RUNNING, _T.CANCELLED, _T.CRASHED, _T.FAILED, _T.COMPLETED, _T.SCHEDULED}
    ),
    _T.RUNNING: frozenset(
        {
            _T.RUNNING,
            _T.PENDING,  # a body that returned Pending() ends its run there, as in Prefect
            _T.COMPLETED,
            _T.FAILED,
            _T.CRASHED,
            _T.CANCELLING,
            _T.CANCELLED,
            _T.SCHEDULED,
            _T.PAUSED,
        }
    ),
    _T.PAUSED: frozenset({_T.RUNNING, _T.CANCELLED, _T.CRASHED, _T.PENDING}),
    _T.CANCELLING: frozenset({_T.CANCELLED, _T.CRASHED}),
    _T.COMPLETED: frozenset(),
    _T.FAILED: frozenset(),
    _T.CANCELLED: frozenset(),
    _T.CRASHED: frozenset(),
}


INITIAL_CODES = frozenset(_CODES[t] for t in _ALLOWED[None])


def _fill_next_codes(kind: StateKind) -> StateKind:
    kind.next_codes = frozenset(_CODES[t] for t in _ALLOWED[kind.type])
    return kind


def kind_for(type: StateType, name: str) -> StateKind:
    """The kind of a state value (used when a run adopts a state it was given)."""
    return _fill_next_codes(StateKind(type, name))


def transition_allowed(old: StateKind | None, new: StateKind) -> bool:
    """Whether ``old -> new`` is in the table."""
    return new.type in _ALLOWED[None if old is None else old.type]


def check_transition(run_label: str, old: StateKind | None, new: StateKind) -> None:
    """Raise :class:`InvalidStateTransition` unless ``old -> new`` is in the table."""
    old_type = None if old is None else old.type
    if new.type not in _ALLOWED[old_type]:
        old_name = "no state" if old is None else old.name
        allowed = ", ".join(sorted(t.value for t in _ALLOWED[old_type]))
        raise InvalidStateTransition(
            f"{run_label} cannot move from {old_name} to {new.name}: "
            f"a {old_type.value if old_type else 'new'} run may only move to "
            f"{allowed or 'nothing (it is final)'}"
        )


def _default_name(state: State[Any]) -> str:
    return state.type.value.capitalize()


def _now_ns() -> int:
    import time

    return time.time_ns()


@attrs.frozen
class State(Generic[R]):
    """An immutable snapshot of a run's state.

    Built by users as in Prefect, ``State(type=StateType.FAILED, message="...", data=...)``
    (its name defaults to the type's, its timestamp to now), or by runs from their history.
    ``data`` holds the result of a completed run or the exception of a failed one.
    """

    type: StateType
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True))
    timestamp_ns: int = attrs.field(factory=_now_ns)
    message: str | None = None
    data: Any = attrs.field(default=None, repr=False)
    #: The id of the run that recorded this state (``None`` for one that code made): a body that
    #: returns a state it made ends in it; one that returns another run's state is judged by it.
    run_id: int | None = attrs.field(default=None, repr=False, eq=False, kw_only=True)

    @property
    def from_run(self) -> bool:
        return self.run_id is not None

    def __repr__(self) -> str:
        return (
            f"{self.name}(message={self.message!r}, type={self.type.value}, result={self.data!r})"
        )

    @property
    def timestamp(self) -> datetime.datetime:
        import datetime

        return datetime.datetime.fromtimestamp(self.timestamp_ns / 1e9, tz=datetime.UTC)

    @property
    def kind(self) -> StateKind:
        return kind_for(self.type, self.name)

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in FINAL_TYPES

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's result; for a failed, crashed or cancelled run, its exception is raised
        (returned instead with ``raise_on_failure=False``).

        As in Prefect, code running on an event loop gets an awaitable of it (``await
        state.result()``); see :meth:`aresult`.
        """
        if _in_async_context():
            return self.aresult(raise_on_failure)
        return self.value(raise_on_failure)

    async def aresult(self, raise_on_failure: bool = True) -> R:
        """:meth:`result`, awaited."""
        return self.value(raise_on_failure)

    def value(self, raise_on_failure: bool = True) -> R:
        """:meth:`result` without Prefect's awaitable in async code: the result itself."""
        if self.type is StateType.COMPLETED:
            return self.data  # type: ignore[no-any-return]  # the result a run recorded
        if not self.is_final():
            if self.type is StateType.PAUSED:
                raise PausedRun("Run is paused, its result is not available.")
            raise UnfinishedRun(f"Run is in {self.type.value} state, its result is not available.")
        data = self.data
        if not raise_on_failure and (data is not None or self.run_id is not None):
            # A run's recorded data is its result, None included (a body returned Failed()).
            return data  # type: ignore[no-any-return]  # the result (or exception) a run recorded
        exc = data if isinstance(data, BaseException) else _exception_for(self)
        if raise_on_failure:
            raise exc
        return exc  # type: ignore[return-value]  # raise_on_failure=False gives the exception

    def __str__(self) -> str:
        inner = [repr(self.message)] if self.message else []
        if self.name.upper() != self.type.value:
            inner.append(f"type={self.type.value}")
        return f"{self.name}({', '.join(inner)})"


for _kind in (
    SCHEDULED, LATE, AWAITING_RETRY, PENDING, NOT_READY, RUNNING, RETRYING, COMPLETED, CACHED,
    FAILED, TIMED_OUT, CANCELLING, CANCELLED, CRASHED, PAUSED,
):  # fmt: skip
    _fill_next_codes(_kind)


def _exception_for(state: State[Any]) -> BaseException:
    if state.type is StateType.CANCELLED:
        return CancelledRun(state.message or "Run cancelled.")
    if state.type is StateType.CRASHED:
        return CrashedRun(state.message or "Run crashed.")
    data = state.data
    if isinstance(data, State):  # a state derived from another run's: that run's exception
        return data.value(raise_on_failure=False) if data.is_final() else _exception_for(data)
    if isinstance(data, (list, tuple, set)):
        # A state derived from several states: raise the first failure among them.
        for inner in data:
            if isinstance(inner, State) and inner.is_final() and not inner.is_completed():
                exc: BaseException = inner.value(raise_on_failure=False)
                return exc
    if isinstance(data, str):
        return FailedRun(data)
    return FailedRun(state.message or "Run failed.")


def raise_state_exception(state: State[Any]) -> None:
    """Raise the exception of a failed, crashed or cancelled ``state``; do nothing for others."""
    if state.is_failed() or state.is_crashed() or state.is_cancelled():
        data = state.data
        raise data if isinstance(data, BaseException) else _exception_for(state)


def _in_async_context() -> bool:
    """Whether an event loop (asyncio or trio) runs in this thread (Prefect's test, trio too)."""
    return current_backend() is not None


def _make(kind: StateKind) -> Callable[..., State[Any]]:
    def constructor(
        message: str | None = None, data: Any = None, *, name: str | None = None
    ) -> State[Any]:
        return State(kind.type, name or kind.name, _now_ns(), message, data)

    constructor.__name__ = kind.name
    constructor.__qualname__ = kind.name
    constructor.__doc__ = f"A new {kind.type.value} state named {kind.name!r}."
    return constructor


Scheduled = _make(SCHEDULED)
Late = _make(LATE)
AwaitingRetry = _make(AWAITING_RETRY)
Pending = _make(PENDING)
NotReady = _make(NOT_READY)
Running = _make(RUNNING)
Retrying = _make(RETRYING)
Completed = _make(COMPLETED)
Cached = _make(CACHED)
Failed = _make(FAILED)
TimedOut = _make(TIMED_OUT)
Cancelling = _make(CANCELLING)
Cancelled = _make(CANCELLED)
Crashed = _make(CRASHED)
Paused = _make(PAUSED)
#: Prefect's other named states.
Suspended = _make(StateKind(StateType.PAUSED, "Suspended"))
AwaitingConcurrencySlot = _make(StateKind(StateType.SCHEDULED, "AwaitingConcurrencySlot"))
