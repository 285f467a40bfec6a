"""Task runners decide where the *sync* bodies of submitted task runs execute.

Whatever the runner, the flow run's supervisor keeps the truth: each run's actor (its state
machine, retries, timeouts, cache) is the same engine; a runner only carries the run's effects
to where the body executes. Async bodies always run natively on their flow's event loop.

A runner given to ``@flow(task_runner=...)`` is a template: each flow run works on its own
:meth:`TaskRunner.duplicate`, started on the first submit and shut down when the flow run ends.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._drive import drive_queued
from ._pool import WorkerPool
from ._runtime import runtime

if TYPE_CHECKING:
    from ._task_run import TaskRun


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

    def shutdown(self, wait: bool = True) -> None:
        """Release resources once every run submitted has finished; without ``wait`` (its flow
        run was interrupted), do not wait for bodies still running."""

    def withdraw(self, runs: set[TaskRun]) -> list[TaskRun]:
        """Take back those of ``runs`` that are still queued, not started (they will not run);
        the runs taken. A runner that cannot says none, and they end when their turn comes."""
        return []

    def __enter__(self) -> TaskRunner:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()


def _default_workers() -> int:
    # Task bodies are mostly I/O-bound, and threads start only when work is queued and exit when
    # idle: a generous bound costs nothing until it is used.
    return max(32, (os.cpu_count() or 1) * 4)


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
        self._pool = runtime.new_pool(self.max_workers, "actorflow-task")

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("Task runner is not started")
        return self._pool

    def submit(self, run: TaskRun) -> None:
        run.queued_item = self.pool.submit(drive_queued, run)

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait)

    def withdraw(self, runs: set[TaskRun]) -> list[TaskRun]:
        if self._pool is None:
            return []
        taken = self._pool.withdraw(lambda fn, args: fn is drive_queued and args[0] in runs)
        withdrawn = [args[0] for args in taken]
        for run in withdrawn:
            run.queued_item = None
        return withdrawn

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"
