"""The one effect interpreter: what an engine may ask for, and the three drivers that carry it out.

Every decision of a run is made by its engine, a generator (``TaskRun.engine()``,
``FlowRun.engine()``) that *yields effects* for what needs waiting:

==========  =========================================  ======================================
effect      meaning                                    the engine receives
==========  =========================================  ======================================
UPSTREAM    ``(UPSTREAM, runs)``: wait for these runs  ``None`` once all are done
INVOKE      ``(INVOKE, fn, args, kwargs, plain)``:     ``(OK|ERR|TIMEOUT|CRASH, value)``
            run the body; ``plain`` when it is just
            ``fn(*args, **kwargs)``, else the run
            invokes it (timeouts, print redirection,
            a flow's supervision)
SLEEP       ``(SLEEP, seconds)``, on the run's clock   ``None``
CALL        ``(CALL, fn, args)``: something that may   its value (awaited if awaitable), or
            block or be async (cache I/O, hooks)       its exception thrown into the engine
==========  =========================================  ======================================

Three drivers carry effects out, each once for tasks and flows alike: :func:`drive_sync` on a
thread, :func:`drive_async` on an event loop (asyncio or trio), and :class:`Stepper` from
callbacks, for runners whose bodies run in other processes. A driver holds its run while it
works and ends with ``run.driver_done()``: the one completion path (see :mod:`._actor`).
"""

from __future__ import annotations

import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol, final

from . import _context, _pool, _suspend
from ._actor import logger, when_all_done
from ._bridge import call_later, run_coroutine_sync, to_thread
from ._clock import SystemClock, current_clock
from ._exceptions import SyncCallOnEventLoopWarning
from ._runtime import runtime
from ._spawn import Loop, current_backend, is_cancellation

if TYPE_CHECKING:
    from ._pool import WorkerPool

__all__ = [
    "CALL",
    "CRASH",
    "EFFECTS_ASYNC",
    "EFFECTS_SYNC",
    "ERR",
    "INVOKE",
    "OK",
    "SLEEP",
    "TIMEOUT",
    "UPSTREAM",
    "Engine",
    "StartBody",
    "Stepper",
    "advance",
    "call_sync",
    "drive_async",
    "drive_here",
    "drive_queued",
    "drive_sync",
]

# Effects, as tuples whose first item is one of these codes.
UPSTREAM, INVOKE, SLEEP, CALL = 0, 1, 2, 3
# Outcomes of INVOKE. CRASH (value: a CrashedRun) is for a body lost with its host (a dead
# worker process): Crashed, or retried if the run has retries left.
OK, ERR, TIMEOUT, CRASH = 0, 1, 2, 3

Effect = tuple[Any, ...]
Engine = Generator[Effect, Any, None]


class Driven(Protocol):
    """What a driver needs of a run (TaskRun and FlowRun provide it)."""

    _abandoned: bool
    _wake: Any
    supervisor: Any

    def engine(self) -> Engine: ...
    def invoke_sync(self, op: Effect) -> tuple[int, Any]: ...
    async def invoke_async(self, op: Effect) -> tuple[int, Any]: ...
    def hold(self) -> None: ...
    def driver_done(self, host_cancelled: bool = False) -> None: ...
    def interrupted(self, exc: BaseException) -> None: ...
    def end_hooks(self) -> list[tuple[Any, tuple[Any, ...]]]: ...
    def label(self) -> str: ...


def call_sync(fn: Any, *args: Any) -> Any:
    """Call ``fn``; an awaitable it returns is run to completion (see ``run_coroutine_sync``)."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return run_coroutine_sync(result)
    return result


def advance(gen: Engine, value: Any, thrown: Exception | None) -> Effect | None:
    """The engine's next effect after ``value`` (or ``thrown``); ``None`` once it has ended."""
    try:
        return gen.send(value) if thrown is None else gen.throw(thrown)
    except StopIteration:
        return None


#: What carrying out an effect gives the engine: ``(value, None)`` or ``(None, exception)``.
Reply = tuple[Any, Exception | None]


# -- on a thread --------------------------------------------------------------------------------
def _invoke_sync(run: Driven, op: Effect) -> Reply:
    if op[4] and run.supervisor is None:  # the common case, inline: just the body
        try:
            return (OK, op[1](*op[2], **op[3])), None
        except Exception as exc:
            return (ERR, exc), None
    return run.invoke_sync(op), None


def _call_sync(run: Driven, op: Effect) -> Reply:
    try:
        return call_sync(op[1], *op[2]), None
    except Exception as exc:
        return None, exc


def _upstream_sync(run: Driven, op: Effect) -> Reply:
    for upstream in op[1]:
        upstream.wait_sync()
    return None, None


def _sleep_sync(run: Driven, op: Effect) -> Reply:
    with _pool.blocking_region():
        current_clock().sleep_sync(op[1])
    return None, None


#: How a thread carries out each effect, by code.
EFFECTS_SYNC: tuple[Callable[[Driven, Effect], Reply], ...] = (
    _upstream_sync,
    _invoke_sync,
    _sleep_sync,
    _call_sync,
)


def drive_sync(run: Driven) -> None:
    """Drive ``run`` to its end on this thread."""
    gen = run.engine()
    token = _context.current_run.set(run)  # type: ignore[arg-type]  # a TaskRun or FlowRun
    run.hold()
    value: Any = None
    thrown: Exception | None = None
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                break
            value, thrown = EFFECTS_SYNC[op[0]](run, op)
            if run._abandoned:  # its flow was interrupted meanwhile: the run has ended
                gen.close()
                return
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        for hook, args in run.end_hooks():  # a flow's on_crashed / on_cancellation
            try:
                call_sync(hook, *args)
            except Exception:
                logger.exception("hook %r of %s raised", _name(hook), run.label())
        raise
    finally:
        _context.current_run.reset(token)
        run.driver_done()


def _name(hook: Any) -> str:
    return str(getattr(hook, "__name__", hook))


def drive_here(run: Driven) -> None:
    """Drive a sync task or flow run that sync code calls: on this thread, or, inside an async
    flow's body (this thread is then its event loop's), on a worker thread while the body is
    suspended, so that the loop goes on."""
    if _suspend._active and _suspend.suspendable():
        _suspend.await_here(to_thread(drive_sync, run))
        return
    outer = _context.current_run.get()
    # Inside a sync run (a sync flow's body, the common case) there is nothing to check: the
    # outermost call has been looked at already.
    if (outer is None or outer.spec.is_async) and current_backend() is not None:
        _warn_blocking_call(run)
    drive_sync(run)


def _warn_blocking_call(run: Any) -> None:
    """A sync run called from async code on an event loop's thread blocks the loop: say so,
    once per task or flow, naming it and what to write instead. (Not on the runtime loop:
    actorflow's own, for the async children of sync flows, it serves no one else.)"""
    if runtime.on_loop_thread():
        return
    spec = run.spec
    warned: set[Any] = runtime.slot("drive.warned-blocking", set)
    key = (spec.name, getattr(spec.fn, "__code__", spec.fn))
    if key in warned:
        return
    warned.add(key)
    import warnings

    kind = "flow" if run.is_flow else "task"
    fn = getattr(spec.fn, "__name__", spec.name)
    warnings.warn(
        f"sync {kind} {spec.name!r} was called from async code on the event loop's thread: it "
        f"runs there, and the loop (every other request and flow on it) waits until it ends. "
        f"Write `await run_sync_in_worker_thread({fn}, ...)` (from "
        f"actorflow.utilities.asyncutils) to run it on a worker thread, or make it async. "
        f"(Said once per {kind}.)",
        SyncCallOnEventLoopWarning,
        stacklevel=4,
    )


def drive_queued(run: Any) -> None:
    """The work item of one submitted sync run on a pool thread. There is nobody to raise to
    here: whatever interrupted the run is recorded in its state, and reported."""
    run.queued_item = None  # it held the run: no cycle left for the collector
    if run.pending_cancel() is not None:
        run.never_started()
        return
    try:
        drive_sync(run)
    except BaseException as exc:
        report_interrupted(run, exc)


def report_interrupted(run: Any, exc: BaseException) -> None:
    """Report what interrupted a run whose driver had nobody to raise to."""
    if isinstance(exc, Exception):  # not from the body (the engine catches those): a bug
        logger.error("%s failed in actorflow itself", run.label(), exc_info=exc)
    else:
        logger.warning("%s was interrupted: %s", run.label(), run.state.message)


# -- on an event loop -------------------------------------------------------------------------
async def _invoke_async(run: Driven, op: Effect) -> Reply:
    # A plain body (op[4]) never comes here: drive_async awaits it inline.
    return await run.invoke_async(op), None


async def _call_async(run: Driven, op: Effect) -> Reply:
    try:
        value = op[1](*op[2])
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        return None, exc
    return value, None


async def _upstream_async(run: Driven, op: Effect) -> Reply:
    for upstream in op[1]:
        await upstream.wait_async()
    return None, None


async def _sleep_async(run: Driven, op: Effect) -> Reply:
    await current_clock().sleep(op[1])
    return None, None


#: How an event loop carries out each effect, by code.
EFFECTS_ASYNC: tuple[Callable[[Driven, Effect], Awaitable[Reply]], ...] = (
    _upstream_async,
    _invoke_async,
    _sleep_async,
    _call_async,
)


async def drive_async(run: Driven, spawned: Loop | None = None) -> None:
    """Drive ``run`` to its end on the running event loop (asyncio or trio).

    ``spawned`` is the loop of a submitted child running in a task of its own (see
    ``Loop.open_group``): a Cancel message then interrupts it wherever it awaits, its own
    cancellation stops here, and its supervisor hears whether its host cancelled it.
    """
    if spawned is not None:
        spawned.enter(run)
    gen = run.engine()
    token = _context.current_run.set(run)  # type: ignore[arg-type]  # a TaskRun or FlowRun
    run.hold()
    value: Any = None
    thrown: Exception | None = None
    host_cancelled = False
    try:
        while True:
            try:
                op = gen.send(value) if thrown is None else gen.throw(thrown)
            except StopIteration:
                break
            if op[0] == INVOKE and op[4]:  # the common case, inline: just the body
                thrown = None
                try:
                    value = (OK, await op[1](*op[2], **op[3]))
                except Exception as exc:
                    value = (ERR, exc)
            else:
                value, thrown = await EFFECTS_ASYNC[op[0]](run, op)
    except BaseException as exc:
        gen.close()
        run.interrupted(exc)
        hooks = run.end_hooks()
        if hooks:  # a flow's on_crashed / on_cancellation, shielded from the cancellation
            import anyio

            with anyio.CancelScope(shield=True):
                for hook, args in hooks:
                    try:
                        value = hook(*args)
                        if inspect.isawaitable(value):
                            await value
                    except Exception:
                        logger.exception("hook %r of %s raised", _name(hook), run.label())
        if spawned is None:
            raise
        if is_cancellation(exc):
            if spawned.absorbs_own_cancel(run):
                return  # its own Cancel: this run alone stops
            host_cancelled = True
            raise
        # An interrupt (SystemExit, KeyboardInterrupt) in a body: the run is Crashed already.
        # On the shared runtime loop it must not travel further: it would stop that loop for
        # every flow. Elsewhere it reaches the flow's host, as in Prefect.
        if not runtime.on_loop_thread():
            raise
    finally:
        _context.current_run.reset(token)
        if spawned is not None:
            run._wake = None  # let the finished task go
        run.driver_done(host_cancelled)


# -- from callbacks -----------------------------------------------------------------------------
#: ``start(run, op, done)``: begin the body of INVOKE ``op`` somewhere and call
#: ``done((OK|ERR|TIMEOUT|CRASH, value))`` exactly once, from any thread, when it is over.
StartBody = Callable[[Any, Effect, Callable[[tuple[int, Any]], None]], None]


@final
class Stepper:
    """Drives one run from callbacks, for runners that keep many bodies in flight elsewhere: it
    advances the engine until it waits for something (a body running elsewhere, a retry delay,
    upstream runs), arranges to be called back, and returns; no thread waits for a run.

    Steps never overlap: a callback that arrives while a step runs (on this thread or another)
    is queued and taken by that step. Effects that may block (cache I/O, hooks) run on ``pool``,
    or inline when the stepper already is on a pool thread.
    """

    __slots__ = ("_busy", "_ctx", "_gen", "_lock", "_pool", "_queued", "_start", "run")

    def __init__(self, run: Any, start: StartBody, pool: WorkerPool) -> None:
        self.run = run
        self._start = start
        self._pool = pool
        self._gen = run.engine()
        # Effects run in a copy of the submitter's context (its clock, tags), as a pool thread
        # would run drive_sync, with the run as the current run.
        self._ctx = contextvars.copy_context()
        self._ctx.run(_context.current_run.set, run)
        self._lock = threading.Lock()
        self._busy = False
        self._queued: list[tuple[Any, bool]] = []
        run.hold()

    @classmethod
    def begin(cls, run: Any, start: StartBody, pool: WorkerPool) -> None:
        """Start driving ``run`` (or end it at once, if it was cancelled before it started)."""
        if run.pending_cancel() is not None:
            run.never_started()
            return
        cls(run, start, pool).resume()

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
        gen, run = self._gen, self.run
        try:
            while True:
                try:
                    op = gen.throw(value) if throw else gen.send(value)
                except StopIteration:
                    run.driver_done()
                    return
                throw = False
                code = op[0]
                if code == INVOKE:
                    run.enter_body()
                    self._start(run, op, self._invoked)
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
                    if not all(upstream.done() for upstream in op[1]):
                        when_all_done(op[1], self.resume)
                        return
                    value = None
                else:  # SLEEP
                    clock = current_clock()
                    if type(clock) is SystemClock:
                        # The timer fires on the runtime loop; the step runs on the pool.
                        def wake() -> None:
                            self._pool.submit(self.resume, None)

                        call_later(op[1], wake)
                    else:
                        self._pool.submit(self._sleep, clock, op[1])
                    return
        except BaseException as exc:
            gen.close()
            run.interrupted(exc)
            report_interrupted(run, exc)
            run.driver_done()

    # -- callbacks, each resuming the engine exactly once -----------------------------------
    def _invoked(self, outcome: tuple[int, Any]) -> None:
        if self.run.leave_body():  # its flow was interrupted meanwhile: the run has ended
            self._gen.close()
            self.run.driver_done()
        else:
            self.resume(outcome)

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
