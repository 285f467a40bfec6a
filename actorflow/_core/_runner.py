"""Task runners decide where the *sync* bodies of submitted task runs execute.

Whatever the runner, the flow run's supervisor keeps the truth: each run's actor (its state
machine, retries, timeouts, cache) is the same engine; a runner only carries the run's effects
to where the body executes. Async bodies always run natively on their flow's event loop.

A runner given to ``@flow(task_runner=...)`` is a template: each flow run works on its own
:meth:`TaskRunner.duplicate`, started on the first submit and shut down when the flow run ends.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ._pool import WorkerPool
from ._task_run import drive_sync, finish_cancelled

if TYPE_CHECKING:
    from ._task_run import TaskRun

logger = logging.getLogger("actorflow.task_runners")


class TaskRunner:
    """Base class: subclasses implement :meth:`submit` and, if they hold resources, the rest."""

    name = "task runner"

    def duplicate(self) -> TaskRunner:
        """A fresh, unstarted runner with the same settings."""
        raise NotImplementedError

    def start(self) -> None:
        """Acquire resources (pools, clusters). Called once, before the first submit."""

    def submit(self, run: TaskRun) -> None:
        """Drive ``run`` (whose body is sync) to a final state, eventually and elsewhere."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release resources once every run submitted has finished."""

    def __enter__(self) -> TaskRunner:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()


def _default_workers() -> int:
    # Task bodies are mostly I/O-bound, and threads start only when work is queued and exit when
    # idle: a generous bound costs nothing until it is used.
    return max(32, (os.cpu_count() or 1) * 4)


def drive_queued(run: TaskRun) -> None:
    """The work item for one queued sync run, as a pool thread executes it."""
    if run.pending_cancel() is not None:
        finish_cancelled(run)
        return
    try:
        drive_sync(run)
    except BaseException:
        # The run already recorded Crashed/Cancelled; a worker thread has nobody to raise to.
        logger.debug("%s was interrupted on its worker thread", run.label(), exc_info=True)


class ThreadPoolTaskRunner(TaskRunner):
    """Runs sync task bodies on a bounded pool of threads (the default runner).

    A body that waits on another run gives its slot away while it waits, so submitting and
    waiting on children from inside tasks never deadlocks, even with ``max_workers=1``.
    """

    name = "threads"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or _default_workers()
        self._pool: WorkerPool | None = None

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(self.max_workers)

    def start(self) -> None:
        if self._pool is not None:
            raise RuntimeError("This task runner is already started")
        self._pool = WorkerPool(self.max_workers, name="actorflow-task")

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("Task runner is not started")
        return self._pool

    def submit(self, run: TaskRun) -> None:
        self.pool.submit(drive_queued, run)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"
