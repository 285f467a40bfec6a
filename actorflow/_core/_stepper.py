"""A callback-driven interpreter of the task engine, for runners whose bodies run elsewhere.

:func:`~._task_run.drive_sync` holds a thread for the whole life of a run. A runner that ships
bodies to other processes (a process pool, a Dask cluster) keeps many runs in flight, so here
nothing blocks: a :class:`Stepper` advances its run's engine until the engine waits for something
(a body running elsewhere, a retry delay, upstream runs), arranges to be called back when that is
ready, and returns. Effects that may block (cache I/O, hooks, retry conditions) run on a
:class:`~._pool.WorkerPool` thread; run inline when the stepper already is on one.

The run's actor stays here, in the supervisor's process: its states, retries, timeouts and cache.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, final

from . import _context, _pool
from ._actor import logger
from ._bridge import call_later
from ._clock import SystemClock, current_clock
from ._task_run import CALL, INVOKE, UPSTREAM, call_sync, engine, finish_cancelled

if TYPE_CHECKING:
    from ._pool import WorkerPool
    from ._task_run import TaskRun

#: ``start(run, fn, args, kwargs, done)``: begin the body somewhere and call
#: ``done((OK|ERR|TIMEOUT|CRASH, value))`` exactly once, from any thread, when it is over.
StartBody = Callable[
    ["TaskRun", Any, tuple[Any, ...], dict[str, Any], Callable[[tuple[int, Any]], None]], None
]


@final
class Stepper:
    """Drives one run's engine from callbacks. Steps never overlap: a callback that arrives while
    a step is still running (on this thread or another) is queued and taken by that step."""

    __slots__ = ("_busy", "_ctx", "_end", "_gen", "_lock", "_pool", "_queued", "_start", "run")

    def __init__(
        self,
        run: TaskRun,
        start: StartBody,
        pool: WorkerPool,
        on_end: Callable[[Stepper], None] | None = None,
    ) -> None:
        self.run = run
        self._start = start
        self._pool = pool
        self._end = on_end
        self._gen = engine(run)
        # Effects run in a copy of the submitter's context (its clock, tags), as a pool thread
        # would run drive_sync, with the run as the current run.
        self._ctx = contextvars.copy_context()
        self._ctx.run(_context.current_run.set, run)
        self._lock = threading.Lock()
        self._busy = False
        self._queued: list[tuple[Any, bool]] = []
        run.hold()

    def resume(self, value: Any = None, throw: bool = False) -> None:
        """Continue the engine with ``value`` (thrown into it with ``throw``)."""
        with self._lock:
            if self._busy:
                self._queued.append((value, throw))
                return
            self._busy = True
        ctx = self._ctx
        while True:
            ctx.run(self._step, value, throw)
            with self._lock:
                if not self._queued:
                    self._busy = False
                    return
                value, throw = self._queued.pop(0)

    def _step(self, value: Any, throw: bool) -> None:
        gen = self._gen
        run = self.run
        try:
            while True:
                try:
                    op = gen.throw(value) if throw else gen.send(value)
                except StopIteration:
                    self._finished()
                    return
                throw = False
                code = op[0]
                if code == INVOKE:
                    self._start(run, op[1], op[2], op[3], self._invoked)
                    return
                if code == CALL:
                    if _pool.current_pool() is None:
                        self._pool.submit(self._call, op[1], op[2])
                        return
                    try:
                        value = call_sync(op[1], *op[2])
                    except Exception as exc:
                        value, throw = exc, True
                elif code == UPSTREAM:
                    waiting = [upstream for upstream in op[1] if not upstream.done()]
                    if waiting:
                        self._await_all(waiting)
                        return
                    value = None
                else:  # SLEEP
                    clock = current_clock()
                    if type(clock) is SystemClock:
                        # The timer fires on the runtime loop; the step runs on the pool.
                        call_later(op[1], self._woken)
                    else:
                        self._pool.submit(self._sleep, clock, op[1])
                    return
        except BaseException as exc:
            gen.close()
            run.interrupted(exc)
            logger.debug("%s was interrupted while stepping", run.label(), exc_info=True)
            self._finished()

    def _finished(self) -> None:
        self.run.release()
        end = self._end
        if end is not None:
            self._end = None
            end(self)

    # -- callbacks, each resuming the engine exactly once -----------------------------------
    def _invoked(self, outcome: tuple[int, Any]) -> None:
        self.resume(outcome)

    def _woken(self) -> None:
        self._pool.submit(self.resume, None)

    def _call(self, fn: Any, args: tuple[Any, ...]) -> None:
        try:
            value = call_sync(fn, *args)
        except Exception as exc:
            self.resume(exc, throw=True)
            return
        self.resume(value)

    def _sleep(self, clock: Any, seconds: float) -> None:
        with _pool.blocking_region():
            clock.sleep_sync(seconds)
        self.resume(None)

    def _await_all(self, runs: list[TaskRun]) -> None:
        remaining = [len(runs)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                remaining[0] -= 1
                ready = remaining[0] == 0
            if ready:
                self.resume(None)

        for upstream in runs:
            upstream.add_done_callback(one_done)


def drive_callback(
    run: TaskRun,
    start: StartBody,
    pool: WorkerPool,
    on_end: Callable[[Stepper], None] | None = None,
) -> Stepper | None:
    """Start driving ``run`` from callbacks; ``on_end(stepper)`` once its engine has finished.

    Returns ``None`` (and calls nothing) when the run was cancelled before it started.
    """
    if run.pending_cancel() is not None:
        finish_cancelled(run)
        return None
    stepper = Stepper(run, start, pool, on_end)
    stepper.resume()
    return stepper
