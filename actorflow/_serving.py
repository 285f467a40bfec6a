"""actorflow inside a long-running async service: a lifecycle for its lifespan.

``async with actorflow.serving(): ...`` brackets a service's life (a Starlette or FastAPI
lifespan). Entering starts nothing: the runtime loop, pools and threads start lazily, on first
use, as ever. While serving, every top-level flow run (a flow called outside any run, in a
request handler, a background task, or on a worker thread) is tracked by the :class:`Service`.
Leaving stops them by the service's policy and then stops what actorflow started:

- ``shutdown="cancel"`` (the default): the flows still running are cancelled at once (an async
  flow where it awaits, its task runs with it; a sync flow's task runs that have not started),
  then given ``grace_period`` seconds to end.
- ``shutdown="drain"``: they are given ``grace_period`` seconds to finish, then cancelled.

A flow still running after that waits on sync task bodies, which Python cannot interrupt: those
task runs are abandoned (Crashed) and the ones queued behind them cancelled, so that their flows
end now: an async flow Cancelled; a sync flow's body (not interrupted either) sees its task runs
end so and ends as it then does (Failed, naming the shutdown, if it asks for their results).
Then the background runs handed to ``.delay()`` are written (the queue's threads stop), the run
journal writes what it holds, and the runtime loop, the pools and every worker thread stop,
waiting up to ``grace_period`` more for threads still running an abandoned body; any thread
still busy then is named in a warning. Each of these ends is an ordinary, observed transition.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TypeVar, final

import attrs

from ._core import Loop, call_off_loop, current_loop, drive_async, runtime, to_thread
from ._signals import write_out

__all__ = [
    "Service",
    "ServiceStatistics",
    "current_service",
    "run_sync_in_worker_thread",
    "serving",
]

T = TypeVar("T")
logger = logging.getLogger("actorflow")

ShutdownPolicy = Literal["cancel", "drain"]
_POLICIES = ("cancel", "drain")


@attrs.frozen
class ServiceStatistics:
    #: Top-level flow runs started while serving that have not ended.
    flows_running: int
    #: Top-level flow runs started while serving.
    flows_started: int
    #: Flow runs the shutdown cancelled.
    flows_cancelled: int
    #: Task runs the shutdown ended after the grace period: those held by sync bodies (which
    #: cannot be interrupted) Crashed, those queued behind them Cancelled.
    tasks_stopped: int
    #: Whether the service is stopping (or has stopped).
    stopping: bool


@final
class _Tracked:
    """A top-level flow run, and what cancels it: the cancel scope around its driver on its
    loop (async flows), or nothing (a sync flow's body runs on a thread)."""

    __slots__ = ("loop", "run", "scope")

    def __init__(self, run: Any, loop: Loop | None, scope: Any) -> None:
        self.run = run
        self.loop = loop
        self.scope = scope


@final
class Service:
    """The flows of one running service; made by :func:`serving`, never by users."""

    def __init__(self, shutdown: ShutdownPolicy, grace_period: float) -> None:
        if shutdown not in _POLICIES:
            raise ValueError(f"serving(shutdown=...) must be 'cancel' or 'drain', got {shutdown!r}")
        if isinstance(grace_period, bool) or not isinstance(grace_period, (int, float)):
            raise TypeError(
                f"serving(grace_period=...) must be a number of seconds, got "
                f"{type(grace_period).__name__}"
            )
        if not grace_period >= 0:
            raise ValueError(f"serving(grace_period=...) must be >= 0, got {grace_period!r}")
        self.shutdown = shutdown
        self.grace_period = float(grace_period)
        self._lock = threading.Lock()
        self._runs: dict[int, _Tracked] = {}
        self._idle: list[Callable[[], None]] = []
        self._started = 0
        self._cancelled = 0
        self._abandoned = 0
        self._stopping = False

    def statistics(self) -> ServiceStatistics:
        with self._lock:
            return ServiceStatistics(
                flows_running=len(self._runs),
                flows_started=self._started,
                flows_cancelled=self._cancelled,
                tasks_stopped=self._abandoned,
                stopping=self._stopping,
            )

    # -- tracking top-level flow runs -----------------------------------------------------------
    def track(self, run: Any, loop: Loop | None = None, scope: Any = None) -> None:
        tracked = _Tracked(run, loop, scope)
        with self._lock:
            self._runs[id(run)] = tracked
            self._started += 1
            stopping = self._stopping
        if stopping:  # started while the service stops: it does not get to run
            self._cancel(tracked, "the service is shutting down")

    def untrack(self, run: Any) -> None:
        with self._lock:
            self._runs.pop(id(run), None)
            idle = self._idle if not self._runs else []
            if idle:
                self._idle = []
        for callback in idle:
            callback()

    async def drive(self, run: Any) -> None:
        """Drive a top-level async flow run, cancellable by the service's shutdown."""
        import anyio

        with anyio.CancelScope() as scope:
            self.track(run, current_loop(), scope)
            try:
                await drive_async(run)
            finally:
                self.untrack(run)

    # -- stopping -------------------------------------------------------------------------------
    def _cancel(self, tracked: _Tracked, reason: str) -> None:
        run = tracked.run
        if run.done():
            return
        with self._lock:
            self._cancelled += 1
        # Its task runs first (they end Cancelled, or, running sync bodies, finish), and the
        # reason the flow run itself reports.
        run.cancel_children(reason)
        if tracked.scope is not None and tracked.loop is not None:
            tracked.loop.call_soon_threadsafe(tracked.scope.cancel)

    def _remaining(self) -> list[_Tracked]:
        with self._lock:
            return list(self._runs.values())

    async def _wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` until no tracked run is left; whether none is."""
        import anyio

        loop = current_loop()
        event = loop.new_event()

        def idle() -> None:
            loop.call_soon(event.set)

        with self._lock:
            if not self._runs:
                return True
            self._idle.append(idle)
        with anyio.move_on_after(seconds):
            await event.wait()
        with self._lock:
            if idle in self._idle:
                self._idle.remove(idle)
            return not self._runs

    async def stop(self) -> None:
        """Stop the flows by the policy, then actorflow's loop, pools and threads."""
        import anyio

        with anyio.CancelScope(shield=True):
            with self._lock:
                self._stopping = True
            grace = self.grace_period
            done = not self._remaining()
            if not done and self.shutdown == "drain":
                done = await self._wait(grace)
            if not done:
                for tracked in self._remaining():
                    self._cancel(tracked, "the service is shutting down")
                done = await self._wait(grace if self.shutdown == "cancel" else 0)
            if not done:
                self._abandon_bodies()
                done = await self._wait(grace)
            if not done:
                logger.warning(
                    "the service stopped with %d flow run(s) still running: %s",
                    len(self._remaining()),
                    ", ".join(t.run.label() for t in self._remaining()),
                )
            busy = await _on_own_thread(_close_all, grace)
            if busy:
                logger.warning(
                    "the service stopped; %d worker thread(s) are still running a task body "
                    "they cannot be stopped in: %s",
                    len(busy),
                    ", ".join(busy),
                )

    def _abandon_bodies(self) -> None:
        # Flows held open by sync task bodies: those runs end Crashed now (recorded), their
        # flows stop waiting for them.
        for tracked in self._remaining():
            run = tracked.run
            before = run.statistics().children_in_flight
            run.interrupt_children("the service is shutting down")
            after = run.statistics().children_in_flight
            with self._lock:
                self._abandoned += max(0, before - after)


def _close_all(timeout: float) -> list[str]:
    """What a stopping service stops, besides its flows: background runs handed to ``.delay()``
    are written and the queue clients' threads stop; the run journal writes what it holds (it
    stays open: it is the process's); then the runtime's loop, pools and threads stop. The
    names of threads still busy."""
    write_out(close_journal=False)
    return runtime.close(timeout)


async def _on_own_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a thread of its own, joined before returning: stopping actorflow's
    threads cannot use them."""
    threads: list[threading.Thread] = []

    def start(work: Callable[[], None]) -> None:
        threads.append(threading.Thread(target=work, name="actorflow-stop", daemon=True))
        threads[0].start()

    value = await call_off_loop(start, fn, *args)
    threads[0].join()
    return value


@final
class _Current:
    """The runtime slot holding the service in progress, if any."""

    __slots__ = ("service",)

    def __init__(self) -> None:
        self.service: Service | None = None


def current_service() -> Service | None:
    """The service in progress in this process, if any."""
    return runtime.slot("serving", _Current).service


@contextlib.asynccontextmanager
async def serving(
    *, shutdown: ShutdownPolicy = "cancel", grace_period: float = 10.0
) -> AsyncIterator[Service]:
    """Run actorflow for the life of an async service (a Starlette or FastAPI lifespan).

    Entering starts nothing (everything starts on first use). Leaving stops the top-level flow
    runs still running, by ``shutdown``: ``"cancel"`` cancels them at once and gives them
    ``grace_period`` seconds to end; ``"drain"`` gives them ``grace_period`` seconds to finish,
    then cancels them. Task runs still held by sync bodies after that are abandoned (Crashed).
    Then the runtime loop, the pools and the worker threads stop (waiting up to
    ``grace_period`` more for busy threads): nothing actorflow started is left behind.
    """
    service = Service(shutdown, grace_period)
    current = runtime.slot("serving", _Current)
    if current.service is not None:
        raise RuntimeError(
            "actorflow.serving() is already in progress in this process: one service at a "
            "time (enter it once, in the application's lifespan)"
        )
    current.service = service
    try:
        yield service
    finally:
        try:
            await service.stop()
        finally:
            if current.service is service:
                current.service = None


async def run_sync_in_worker_thread(__fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call sync ``__fn(*args, **kwargs)`` on a worker thread and await its value, without
    blocking the event loop: the way to call a sync task or flow from async code (as in
    ``prefect.utilities.asyncutils``). It runs in a copy of the caller's context (observers,
    tags). If the caller is cancelled, the call still runs to its end."""
    return await to_thread(functools.partial(__fn, *args, **kwargs))
