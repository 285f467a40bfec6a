"""Run records: every state transition is an event that observers (a journal, a test) receive.

Observers are registered for a block of code with :func:`observe` and are inherited by every run
created inside it, including runs in worker threads. With no observer the cost per transition is
one truth test.

Process-wide sinks (:func:`add_sink`) see every transition of every run in the process, wherever
it was created (a web service's request handlers, a worker thread). A sink receives the raw
transition, ``(run, old_kind, kind, timestamp_ns, message, data)``, on the transitioning thread,
and must be quick and thread-safe: a journal appends it to a queue and builds records elsewhere.
With no sink the cost per transition is one truth test.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, final

from ._context import flow_of

if TYPE_CHECKING:
    from ._events import TransitionEvent
    from ._states import State

Observer = Callable[["TransitionEvent"], None]
observers: ContextVar[tuple[Observer, ...]] = ContextVar("actorflow_observers", default=())


@contextlib.contextmanager
def observe(observer: Observer) -> Iterator[Observer]:
    """Send every transition of runs created inside the block to ``observer``.

    Observers are called on the thread making the transition; they must be quick and thread-safe.
    An observer that raises is reported and detached from nothing else: the run goes on.
    """
    token = observers.set((*observers.get(), observer))
    try:
        yield observer
    finally:
        observers.reset(token)


Sink = Callable[[Any, Any, Any, int, "str | None", Any], None]
#: The process-wide sinks, called in order for every transition. Changed in place (under
#: ``_sinks_lock``), never rebound: the actor module holds this very list.
sinks: list[Sink] = []
_sinks_lock = threading.Lock()


def add_sink(sink: Sink) -> None:
    """Send every transition of every run in this process to ``sink`` (once, however often it
    is added)."""
    with _sinks_lock:
        if sink not in sinks:
            sinks[:] = [*sinks, sink]


def remove_sink(sink: Sink) -> None:
    """Stop sending transitions to ``sink`` (nothing happens if it was not added)."""
    with _sinks_lock:
        sinks[:] = [s for s in sinks if s != sink]


def event_for(run: Any, old: Any, state: State[Any]) -> TransitionEvent:
    """The :class:`TransitionEvent` of ``run`` moving from the kind ``old`` to ``state``."""
    from ._events import TransitionEvent

    parent = run.parent
    flow = flow_of(parent)
    return TransitionEvent(
        run_id=str(run.id),
        run_kind="flow" if run.is_flow else "task",
        run_name=run.name,
        task_key=run.task_key(),
        parent_id=None if parent is None else str(parent.id),
        flow_run_id=None if flow is None else str(flow.id),
        from_state=None if old is None else old.name,
        state=state,
    )


@final
class RunRecorder:
    """Collects transition events in memory: ``with RunRecorder() as rec: ...``."""

    def __init__(self) -> None:
        self.events: list[TransitionEvent] = []
        self._lock = threading.Lock()
        self._cm: Any = None

    def __call__(self, event: TransitionEvent) -> None:
        with self._lock:
            self.events.append(event)

    def __enter__(self) -> RunRecorder:
        self._cm = observe(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._cm.__exit__(*exc_info)

    def history(self, run_id: Any) -> list[str]:
        """State names of one run, in order."""
        key = str(run_id)
        with self._lock:
            return [e.state.name for e in self.events if e.run_id == key]

    def runs(self, run_kind: str | None = None) -> list[str]:
        """Ids of the runs seen, in order of their first event."""
        seen: dict[str, None] = {}
        with self._lock:
            for e in self.events:
                if run_kind is None or e.run_kind == run_kind:
                    seen.setdefault(e.run_id, None)
        return list(seen)
