"""The flow run engine: every decision of a flow run, carried out by any driver.

Parameters are checked (and coerced, when the flow validates them), futures among them resolved,
then the body runs through its attempts (see :mod:`._attempts`). What the body returns decides
the run's end by Prefect's rules (:func:`state_from_return`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol

from . import _context
from ._attempts import Verdict, attempts, run_hooks
from ._drive import INVOKE, OK, TIMEOUT, UPSTREAM, Effect, Engine
from ._exceptions import FlowRunTimeoutError, ParameterBindError, ParameterTypeError
from ._resolve import collect, has_futures, map_futures, resolve_inputs
from ._specs import FlowSpec
from ._states import CANCELLED, COMPLETED, FAILED, PAUSED, TIMED_OUT, State, StateKind

__all__ = ["flow_engine", "state_from_return"]


class EngineRun(Protocol):
    """What the engine reads and writes of its run (a ``_flow_run.FlowRun``, whose module is
    above this one: the run starts its engine)."""

    @property
    def spec(self) -> FlowSpec: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...
    @property
    def wait_for(self) -> Any: ...

    returned: Any

    def transition(self, kind: StateKind, message: str | None = None, data: Any = None) -> None: ...


def flow_engine(fr: EngineRun) -> Engine:
    spec = fr.spec
    args, kwargs = fr.args, fr.kwargs
    _context.log_beginning(fr)
    # Futures among the parameters and in wait_for are resolved first, as for task runs; then
    # the values are checked against the annotations.
    if fr.wait_for is not None or has_futures(args, kwargs):
        resolved = yield from resolve_inputs(fr, args, kwargs, fr.wait_for)
        if resolved is None:
            return
        args, kwargs = resolved
    try:
        if spec.validate is not None:
            args, kwargs = spec.validate(args, kwargs)
    except (ParameterBindError, ParameterTypeError) as exc:
        fr.transition(
            FAILED,
            f"Validation of flow parameters failed with error: {type(exc).__name__}: {exc}",
            exc,
        )
        yield from run_hooks(fr, spec, spec.on_failure)
        return

    yield from attempts(fr, spec, (INVOKE, spec.fn, args, kwargs, False), _judge)


def _judge(fr: EngineRun, outcome: tuple[int, Any], context: Any) -> Any:
    """What an attempt's outcome means for a flow run (a Verdict, or a generator of one)."""
    code, value = outcome
    if code == OK:
        return _returned(fr, value)
    if code == TIMEOUT:
        error = FlowRunTimeoutError(f"Scope timed out after {value} second(s).")
        return TIMED_OUT, f"Flow run exceeded timeout of {value} second(s)", error, True
    if isinstance(value, TimeoutError):
        return TIMED_OUT, f"Flow run failed due to timeout: {value!r}", value, True
    message = f"Flow run encountered an exception: {type(value).__name__}: {value}"
    return FAILED, message, value, True


def _returned(fr: EngineRun, value: Any) -> Generator[Effect, Any, Verdict]:
    """A returned value's futures, at any depth, are waited for and become their runs' states:
    what the caller receives, and (a state, or a collection of states) what the run ends in."""
    found: list[tuple[Any, bool]] = []
    collect(value, found)
    if found:
        yield (UPSTREAM, [run for run, _ in found])
        value = map_futures(value, lambda future: future.state)
    fr.returned = value
    kind, message, data = state_from_return(value)
    return kind, message, data, kind.type is FAILED.type


def state_from_return(value: Any) -> tuple[StateKind, str | None, Any]:
    """Prefect's rules: a State the body made itself is the run's end, as it is; a state of
    another run (a returned future's), or a collection of states, gives a state derived from
    all; anything else is Completed."""
    if isinstance(value, State) and not value.from_run:
        return value.kind, value.message, value.data
    if isinstance(value, State):
        states: list[State[Any]] = [value]
    elif type(value) in (list, tuple, set) and value and all(isinstance(v, State) for v in value):
        states = list(value)
    else:
        return COMPLETED, None, value
    total = len(states)
    if all(s.is_completed() for s in states):
        return COMPLETED, "All states completed.", value
    cancelled = sum(s.is_cancelled() for s in states)
    if cancelled:
        return CANCELLED, f"{cancelled}/{total} states cancelled.", value
    paused = sum(s.is_paused() for s in states)
    if paused:
        return PAUSED, f"{paused}/{total} states paused.", value
    failed = sum(s.is_failed() or s.is_crashed() for s in states)
    if failed:
        return FAILED, f"{failed}/{total} states failed.", value
    unfinished = sum(not s.is_final() for s in states)
    return FAILED, f"{unfinished}/{total} states are not final.", value
