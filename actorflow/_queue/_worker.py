"""The consuming side: a task worker runs queued runs of the tasks it serves.

One thread claims runs (at most ``limit`` in flight), each is driven by the full engine (sync
bodies on the worker's pool, async ones on the runtime's event loop), and a writer thread records
their states and outcomes in batches. A heartbeat thread renews the leases of runs in flight.

A run's outcome is written, and the run acknowledged, only after its final state and hooks:
a worker that dies before that leaves the run to be redelivered once its lease expires. Each
delivery runs the task from its first attempt: a redelivery does not count against the task's
``retries``; deliveries are bounded by ``ACTORFLOW_QUEUE_MAX_DELIVERIES`` instead, past which the
run is dead-lettered (recorded Crashed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any, final

import attrs

from .._core import (
    LoopGroup,
    NotReady,
    State,
    StateType,
    TaskRun,
    TaskSpec,
    TransitionEvent,
    WorkerPool,
    drive_async,
    drive_queued,
    observers,
    runtime,
)
from ._broker import Broker, Delivery, QueueSettings, Record, settings
from ._brokers import broker
from ._client import QueuedTask, state_of

__all__ = ["TaskWorker", "WorkerStatistics", "serve"]

logger = logging.getLogger("actorflow.task_worker")

#: How long a stopping worker lets running runs finish before it leaves them to others.
DEFAULT_GRACE = 10.0
#: Threads for sync bodies at most, unless given (Prefect's workers share anyio's 40).
DEFAULT_THREADS = 40


@attrs.frozen
class WorkerStatistics:
    in_flight: int
    started: int
    finished: int
    fenced: int
    dead_lettered: int


def _outcome_bytes(state: State[Any]) -> bytes | None:
    data = state.data
    if data is None:
        return None
    try:
        return pickle.dumps(data, protocol=5)
    except Exception as exc:
        if isinstance(data, BaseException):
            substitute = RuntimeError(f"{type(data).__name__}: {data}")
            return pickle.dumps(substitute, protocol=5)
        return pickle.dumps(
            RuntimeError(f"the result ({type(data).__name__}) could not be serialized: {exc}")
        )


def _record(state: State[Any], final: bool) -> Record:
    data = _outcome_bytes(state) if final else None
    if final and state.type is StateType.COMPLETED and state.data is not None and data is not None:
        # A completed run whose result could not be pickled: recorded Failed, saying why.
        loaded = pickle.loads(data)
        if isinstance(loaded, RuntimeError) and not isinstance(state.data, RuntimeError):
            return Record("FAILED", "Failed", state.timestamp_ns, str(loaded), data, True)
    return Record(state.type.name, state.name, state.timestamp_ns, state.message, data, final)


@final
class TaskWorker:
    """Serves ``tasks``: claims their queued runs, at most ``limit`` at a time, and runs them."""

    def __init__(
        self,
        *tasks: QueuedTask,
        limit: int | None = 10,
        config: QueueSettings | None = None,
        grace: float = DEFAULT_GRACE,
        threads: int | None = None,
    ) -> None:
        if not tasks:
            raise ValueError("A task worker needs at least one task to serve")
        for t in tasks:
            if not isinstance(getattr(t, "spec", None), TaskSpec):
                raise TypeError(f"A task worker serves tasks (made with @task), got {t!r}")
        if limit is None:
            limit = 10_000
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"'limit' must be a positive integer, got {limit!r}")
        self.tasks: dict[str, QueuedTask] = {t.task_key: t for t in tasks}
        self.limit = limit
        #: Threads for sync bodies: the runs in flight beyond them wait for one, leased.
        self.threads = threads or min(limit, DEFAULT_THREADS)
        self.grace = grace
        self.config = config or settings()
        self.broker: Broker = broker(self.config)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._cond = threading.Condition()
        self._active: dict[str, Delivery] = {}
        #: Non-final states to record, appended by observers without a lock (a deque's append
        #: is atomic), written within 50 ms or with the next outcomes.
        self._updates: deque[tuple[Delivery, Record]] = deque()
        self._finished: list[tuple[Delivery, Record]] = []
        #: Outcomes not yet known to be written, by run id, under the lease to write them with.
        self._outcomes: dict[str, tuple[Delivery, Record]] = {}
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._writer_done = False
        self._pool: WorkerPool | None = None
        self._group: LoopGroup | None = None
        self._warned: set[str] = set()
        self._started = self._ended = self._fenced = self._dead = 0
        self._observers = observers.get()

    def statistics(self) -> WorkerStatistics:
        with self._cond:
            return WorkerStatistics(
                len(self._active), self._started, self._ended, self._fenced, self._dead
            )

    def stop(self) -> None:
        """Stop taking runs (thread-safe); :meth:`run` then winds down."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    # -- the main loop --------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> None:
        """Serve until :meth:`stop`, a signal (SIGTERM/SIGINT, on the main thread) or ``timeout``
        seconds; then let runs in flight finish within ``grace`` seconds and leave the rest."""
        try:
            self._serve(timeout)
        finally:
            self._stopped.set()

    def _serve(self, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        keys = list(self.tasks)
        logger.info(
            "Task worker %s serving %s (limit %d)",
            self.name,
            ", ".join(f"{t.name!r} ({k})" for k, t in self.tasks.items()),
            self.limit,
        )
        writer = threading.Thread(target=self._write_loop, name="actorflow-worker-writer")
        beat = threading.Thread(
            target=self._heartbeat_loop, name="actorflow-worker-heartbeat", daemon=True
        )
        writer.start()
        beat.start()
        last_look = 0.0
        with self._signals():
            try:
                while not self._stop.is_set():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        break
                    with self._cond:
                        free = self.limit - len(self._active)
                        if free <= 0:
                            self._cond.wait(0.5 if remaining is None else min(0.5, remaining))
                            continue
                    block = 0.25 if remaining is None else max(0.0, min(0.25, remaining))
                    try:
                        claimed, dead = self.broker.claim(self.name, keys, free, block)
                    except Exception as exc:
                        logger.error("task worker could not claim runs: %s", exc)
                        self._stop.wait(1.0)
                        continue
                    for d in dead:
                        self._dead += 1
                        logger.error(
                            "Background run %s of %r dead-lettered (Crashed): delivered %d "
                            "times without finishing",
                            d.id,
                            d.name,
                            d.token - 1,
                        )
                    for d in claimed:
                        self._start(d)
                    if not claimed and time.monotonic() - last_look > 5.0:
                        last_look = time.monotonic()
                        self._look_for_strangers()
            finally:
                self._wind_down()
                writer.join()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            logger.info("Task worker %s stopping (%s)", self.name, signal.Signals(signum).name)
            self.stop()

        previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _wind_down(self) -> None:
        deadline = time.monotonic() + self.grace
        with self._cond:
            while self._active and time.monotonic() < deadline:
                self._cond.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            left = list(self._active.values())
            self._active.clear()
        if left:
            logger.warning(
                "Task worker %s stopped with %d run(s) unfinished; they go to another worker",
                self.name,
                len(left),
            )
            with contextlib.suppress(Exception):
                self.broker.release(left)
        with self._cond:
            self._writer_done = True
            self._cond.notify_all()
        if self._group is not None:
            self._group.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _look_for_strangers(self) -> None:
        """Log runs waiting for tasks this worker does not serve (left for another worker)."""
        try:
            queued = self.broker.queued()
        except Exception:
            return
        for key, count in queued.items():
            if key not in self.tasks and key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "%d queued run(s) of task_key %r are left for another worker: this worker "
                    "serves no task with that key (changed code gives a new key)",
                    count,
                    key,
                )

    # -- one run --------------------------------------------------------------------------------
    def _start(self, d: Delivery) -> None:
        with self._cond:
            if d.id in self._outcomes:
                # Ours, ended, its outcome not written before the lease ran out (a slow disk):
                # written under the new lease instead of run again.
                self._outcomes[d.id] = (d, self._outcomes[d.id][1])
                self._finished = [
                    (d if old.id == d.id else old, record) for old, record in self._finished
                ]
                return
        task = self.tasks.get(d.task_key)
        if task is None:  # not asked for: leave it to a worker that serves it
            logger.warning("run %s of task_key %r is not served here; released", d.id, d.task_key)
            self.broker.release([d])
            return
        with self._cond:
            self._active[d.id] = d
            self._started += 1
        try:
            args, kwargs, wait_for = pickle.loads(d.payload)
        except Exception as exc:
            message = f"The run's arguments could not be loaded: {type(exc).__name__}: {exc}"
            self._end(d, State(StateType.FAILED, "Failed", time.time_ns(), message, exc))
            return
        if wait_for and not self._upstream_done(d, wait_for):
            return
        # Observers of the code that made the worker see its runs too, wherever it runs them.
        token = observers.set((*self._observers, lambda event: self._observed(d, event)))
        try:
            run = TaskRun(task.spec, args, kwargs, None, None, None, int(d.id, 16))
        finally:
            observers.reset(token)
        run.add_done_callback(lambda: self._end(d, run.state))
        if task.spec.is_async:
            group = self._group
            if group is None:
                group = self._group = LoopGroup()
            run.loop = group.loop
            group.start_soon(_start_in_group, group, run)
        else:
            pool = self._pool
            if pool is None:
                pool = self._pool = runtime.new_pool(self.threads, "actorflow-task-worker")
            pool.submit(drive_queued, run)

    def _upstream_done(self, d: Delivery, wait_for: Sequence[str]) -> bool:
        # Runs it must wait for: until they are final (holding its slot); a run that did not
        # complete leaves this one NotReady, as a failed upstream does in a flow.
        while True:
            records = self.broker.read(wait_for)
            if all(r is not None and r.final for r in records):
                break
            if self._stop.wait(0.05):
                return False
        for run_id, record in zip(wait_for, records, strict=True):
            state = state_of(run_id, record)
            if not state.is_completed():
                message = f"Upstream background run {run_id} ended {state.name}"
                self._end(d, NotReady(message))
                return False
        return True

    def _observed(self, d: Delivery, event: TransitionEvent) -> None:
        state = event.state
        if state.is_final() or state.type is StateType.PENDING:
            # Pending is written by the claim; a final state with the outcome, once the run
            # (hooks included) is done.
            return
        self._updates.append((d, _record(state, False)))

    def _end(self, d: Delivery, state: State[Any]) -> None:
        record = _record(state, True)
        with self._cond:
            if self._active.pop(d.id, None) is None:
                return  # released by a stopping worker: another one has it now
            self._finished.append((d, record))
            self._outcomes[d.id] = (d, record)
            self._cond.notify_all()

    # -- writing --------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._updates and not self._finished and not self._writer_done:
                    self._cond.wait(0.05)  # updates come without a notify
                if not self._updates and not self._finished:
                    return
                finished, self._finished = self._finished, []
            latest: dict[str, tuple[Delivery, Record]] = {}
            pending = self._updates
            while pending:
                update = pending.popleft()
                latest[update[0].id] = update
            ended = {d.id for d, _ in finished}
            active = self._active  # a released run's updates are dropped too
            updates = [u for key, u in latest.items() if key not in ended and key in active]
            try:
                if updates:
                    self.broker.update(updates)
                if finished:
                    won = self.broker.finish(finished)
                    self._count(finished, won)
            except Exception as exc:
                logger.error("task worker could not record %d run(s): %s", len(finished), exc)
                with self._cond:
                    self._finished[:0] = finished  # tried again; the lease fences repeats
                    if self._writer_done:
                        return
                self._stop.wait(0.5)

    def _count(self, finished: Sequence[tuple[Delivery, Record]], won: Sequence[bool]) -> None:
        lost = []
        with self._cond:
            for (d, _), ok in zip(finished, won, strict=True):
                latest = self._outcomes.pop(d.id, None)
                if ok or latest is None:
                    continue
                if latest[0].token != d.token:  # taken again by this worker meanwhile
                    self._outcomes[d.id] = latest
                    self._finished.append(latest)
                    self._cond.notify_all()
                else:
                    lost.append(d)
            finished = [f for f in finished if f[0].id not in self._outcomes]
            self._ended += len(finished) - len(lost)
            self._fenced += len(lost)
        for d in lost:
            logger.warning(
                "outcome of background run %s not recorded: this worker lost its lease (another "
                "worker took the run over, or it already ended)",
                d.id,
            )

    def _heartbeat_loop(self) -> None:
        # Until the worker has stopped: runs finishing within the grace keep their leases.
        every = self.config.lease / 3
        while not self._stopped.wait(every):
            with self._cond:  # running, or ended with the outcome still to write
                held = [*self._active.values(), *(d for d, _ in self._outcomes.values())]
            if not held:
                continue
            try:
                lost = self.broker.renew(self.name, held)
            except Exception as exc:
                logger.error("task worker could not renew its leases: %s", exc)
                continue
            for d in lost:
                logger.warning("task worker lost its lease on background run %s", d.id)


def _start_in_group(group: LoopGroup, run: TaskRun) -> None:
    host: Any = group.group  # a Group of the runtime loop; its driver type is the core's
    try:
        host.start(drive_async, run)
    except BaseException as exc:
        run.never_started(f"Could not start the task run: {type(exc).__name__}: {exc}")


def serve(*tasks: QueuedTask, limit: int | None = 10, timeout: float | None = None) -> Any:
    """Serve ``tasks`` until stopped (SIGTERM, Ctrl-C) or ``timeout`` seconds pass.

    Called from async code (asyncio or trio) it returns an awaitable, as in Prefect; the worker
    then runs on a thread and the event loop goes on.
    """
    worker = TaskWorker(*tasks, limit=limit)
    from .._core import current_backend

    if current_backend() is not None:
        return _serve_async(worker, timeout)
    worker.run(timeout)
    return None


async def _serve_async(worker: TaskWorker, seconds: float | None) -> None:
    import anyio

    try:
        await anyio.to_thread.run_sync(worker.run, seconds, abandon_on_cancel=True)
    finally:
        # Cancelled: the worker winds down (within its grace) before this returns.
        worker.stop()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(worker._stopped.wait)
