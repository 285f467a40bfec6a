"""Futures: handles on task runs, usable from sync code, from any thread and from async code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Generic, NamedTuple, TypeVar, final

from . import _suspend
from ._actor import Actor, Cancel
from ._exceptions import BlockingWaitOnEventLoop
from ._pool import SIGNAL_CHECK_SECONDS, blocking_region
from ._spawn import current_loop
from ._states import State

R = TypeVar("R")


@final
class TaskFuture(Generic[R]):
    """The future of one task run, returned by ``Task.submit`` and ``Task.map``.

    ``await future`` gives the result in async code; ``future.result()`` blocks in sync code.
    """

    __slots__ = ("_run",)

    def __init__(self, run: Actor) -> None:
        self._run = run

    @property
    def task_run_id(self) -> Any:
        return self._run.id

    @property
    def task_run(self) -> Actor:
        return self._run

    @property
    def state(self) -> State[R]:
        """The run's current state (its final state once it is done)."""
        return self._run.state

    def done(self) -> bool:
        return self._run.done()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is done, or ``timeout`` seconds pass; never raises on timeout."""
        self._run.wait_sync(timeout)

    async def wait_async(self) -> None:
        await self._run.wait_async()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's result, waiting up to ``timeout`` seconds for it.

        A failed run re-raises its exception (returned instead with ``raise_on_failure=False``);
        a run still unfinished at the timeout raises :class:`TimeoutError`.
        """
        run = self._run
        if not run.done() and not run.wait_sync(timeout):
            raise TimeoutError(f"Task run {run.id} did not complete within {timeout} seconds")
        completed, value = run.completed_value()
        if completed:
            return value  # type: ignore[no-any-return]  # the run's result, typed by its task
        return run.state.value(raise_on_failure)  # type: ignore[no-any-return]  # likewise

    def add_done_callback(self, fn: Callable[[TaskFuture[R]], object]) -> None:
        """Call ``fn(future)`` once the run is done, on the thread that finishes it."""

        def call() -> None:
            fn(self)

        self._run.add_done_callback(call)

    def cancel(self) -> bool:
        """Ask the run to stop. ``True`` if it will end Cancelled; ``False`` if it already
        finished or runs sync code that cannot be interrupted."""
        run = self._run
        if run.done():
            return False
        run.send(Cancel("cancelled through its future"))
        return run.cancel_will_take_effect()

    def __await__(self) -> Generator[Any, None, R]:
        run = self._run
        if not run.done():
            yield from run.wait_async().__await__()
        completed, value = run.completed_value()
        if completed:
            return value  # type: ignore[no-any-return]  # the run's result, typed by its task
        return run.state.value()  # type: ignore[no-any-return]  # likewise

    def __repr__(self) -> str:
        return f"TaskFuture({self._run.name!r}, state={self._run.state_name})"


class TaskFutureList(list[TaskFuture[R]]):
    """The futures of a ``Task.map`` call, in the order of the mapped inputs."""

    def wait(self, timeout: float | None = None) -> None:
        wait(self, timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[R]:
        """Results in input order, once all are done; the first failure (in that order) is
        raised. Raises :class:`TimeoutError` if they are not all done within ``timeout``."""
        _, not_done = wait(self, timeout=timeout)
        if not_done:
            raise TimeoutError(
                f"Timed out waiting for all futures to complete within {timeout} seconds"
            )
        return [future.result(raise_on_failure=raise_on_failure) for future in self]


class DoneAndNotDoneFutures(NamedTuple, Generic[R]):
    done: set[TaskFuture[R]]
    not_done: set[TaskFuture[R]]


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError(f"'timeout' must be a non-negative number, got {timeout}")


def wait(
    futures: Iterable[TaskFuture[R]], timeout: float | None = None
) -> DoneAndNotDoneFutures[R]:
    """Wait for every future, or until ``timeout``; returns ``(done, not_done)``, never raises
    on timeout."""
    _check_timeout(timeout)
    futures = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    for future in futures:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not future._run.wait_sync(remaining):
            break
    done = {f for f in futures if f.done()}
    return DoneAndNotDoneFutures(done, {f for f in futures if f not in done})


def as_completed(
    futures: Iterable[TaskFuture[R]], timeout: float | None = None
) -> Iterator[TaskFuture[R]]:
    """Yield futures as they finish. Raises :class:`TimeoutError` naming how many are left when
    ``timeout`` passes first."""
    _check_timeout(timeout)
    pending = set(futures)
    total = len(pending)
    if not pending:
        return
    suspend = _suspend.suspendable()
    if not suspend:
        for future in pending:
            run = future._run
            if not run.done() and run.loop is not None and run.loop.on_loop_thread():
                raise BlockingWaitOnEventLoop(
                    f"{run.label()} runs on this thread's event loop, so as_completed() here "
                    "would deadlock: await the futures (for example with asyncio.as_completed "
                    "or an anyio task group) in async code."
                )
    finished: list[TaskFuture[R]] = []
    arrived = _Arrivals(suspend)
    for future in pending:
        future.add_done_callback(lambda f: arrived.post(finished, f))
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        remaining = None if deadline is None else deadline - time.monotonic()
        batch = arrived.take(finished, remaining)
        if not batch:
            raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
        for future in batch:
            pending.discard(future)
            yield future


class _Arrivals:
    """Hands futures finished on any thread to ``as_completed``'s consumer, which blocks (or,
    inside an async flow's body, suspends) until one arrives."""

    def __init__(self, suspend: bool) -> None:
        self._cond = threading.Condition()
        self._event: Any = None
        self._loop: Any = None
        if suspend:
            self._loop = current_loop()

    def post(self, finished: list[Any], future: Any) -> None:
        with self._cond:
            finished.append(future)
            self._cond.notify()
            event = self._event
        if event is not None:
            self._loop.call_soon(event.set)

    def take(self, finished: list[Any], timeout: float | None) -> list[Any]:
        """Everything finished so far, waiting for at least one (``[]`` at the timeout)."""
        with self._cond:
            if not finished and self._loop is None:
                # On the main thread, a short slice at a time: Ctrl-C gets out promptly.
                main = threading.current_thread() is threading.main_thread()
                deadline = None if timeout is None else time.monotonic() + timeout
                with blocking_region():
                    while not finished:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            break
                        if main:
                            remaining = min(remaining or SIGNAL_CHECK_SECONDS, SIGNAL_CHECK_SECONDS)
                        self._cond.wait(remaining)
            elif not finished:
                self._event = self._loop.new_event()
        if self._event is not None:
            _suspend.await_here(_wait_event(self._event, timeout))
            self._event = None
        with self._cond:
            batch, finished[:] = list(finished), []
        return batch


async def _wait_event(event: Any, seconds: float | None) -> None:
    import anyio

    with anyio.move_on_after(seconds):
        await event.wait()
