"""Attempts, retries and hooks: the part of a run's life that tasks and flows share.

:func:`attempts` runs the body until an attempt succeeds or fails with no retry left (a retry
waits its delay in ``AwaitingRetry``, then runs ``Retrying``), records the end, and runs the
hooks for it. What an outcome *means* differs between tasks and flows (a task persists its
result; a flow waits for the futures it returned and derives its state from them), so each
engine passes its own ``judge``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, cast

from . import _context
from ._actor import logger
from ._drive import CALL, SLEEP, Effect
from ._retries import delay_for
from ._specs import RunSpec
from ._states import AWAITING_RETRY, COMPLETED, RETRYING, RUNNING, State, StateKind

__all__ = ["Verdict", "attempts", "run_hooks"]


#: What one attempt's outcome means: ``(kind, message, data, retryable)``, the state it would
#: end the run in and whether a retry may be made instead. A plain tuple: one is made per run.
Verdict = tuple[StateKind, "str | None", Any, bool]
#: ``judge(run, outcome, context)``: a Verdict, or a generator of effects that returns one (when
#: reading the outcome needs waiting: persisting a result, waiting for returned futures).
Judge = Callable[[Any, tuple[int, Any], Any], "Verdict | Generator[Effect, Any, Verdict]"]


def attempts(
    run: Any, spec: RunSpec, invoke: Effect, judge: Judge, context: Any = None
) -> Generator[Effect, Any, None]:
    """Run the body (``invoke``) until an attempt ends the run; record the end, run its hooks."""
    while True:
        run.run_count += 1
        run.transition(RUNNING if run.run_count == 1 else RETRYING)
        if spec.on_running:
            yield from run_hooks(run, spec, spec.on_running)
        judged = judge(run, (yield invoke), context)
        if type(judged) is tuple:
            verdict: Verdict = judged
        else:
            verdict = yield from cast("Generator[Effect, Any, Verdict]", judged)
        kind, message, data, retryable = verdict
        seconds = 0.0
        retry = (
            retryable
            and run.run_count <= spec.retries
            and (yield from _should_retry(run, spec, verdict))
        )
        if retry:
            seconds = delay_for(spec.retry_delay, spec.retries, run.run_count, spec.retry_jitter)
        if retryable and isinstance(data, BaseException) and _context.lifecycle_logging(run):
            where = (run.run_count, spec.retries, seconds) if retry else None
            _context.log_failure(run, data, where)
        if retry:
            if seconds > 0:
                run.transition(AWAITING_RETRY, f"Retrying in {seconds:g} seconds: {message}")
                yield (SLEEP, seconds)
            continue
        run.end_in(kind, message, data)
        if _context.lifecycle_logging(run):
            _context.log_finished(run)
        hooks = spec.on_completion if kind is COMPLETED else spec.hooks_for(kind.type)
        if hooks:
            yield from run_hooks(run, spec, hooks)
        return


def _should_retry(run: Any, spec: RunSpec, verdict: Verdict) -> Generator[Effect, Any, bool]:
    condition = spec.retry_condition
    if condition is None:
        return True
    kind, message, data, _ = verdict
    state = kind.at(0, message, data)
    try:
        return bool((yield (CALL, condition, (spec.owner, run, state))))
    except Exception:
        logger.exception("retry_condition_fn of %s raised; not retrying", run.label())
        return False


def run_hooks(
    run: Any, spec: RunSpec, hooks: tuple[Callable[..., Any], ...]
) -> Generator[Effect, Any, None]:
    """Call each hook with ``(task or flow, run, state)``; one that raises is reported, and the
    run's state stands."""
    state: State[Any] = run.state
    for hook in hooks:
        try:
            yield (CALL, hook, (spec.owner, run, state))
        except Exception:
            logger.exception(
                "hook %r of %s raised; the run's state stays %s",
                getattr(hook, "__name__", hook),
                run.label(),
                state.name,
            )
