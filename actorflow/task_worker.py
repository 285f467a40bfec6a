"""Task workers: serve background runs queued with ``Task.delay`` (Prefect's
``prefect.task_worker``).

``serve(*tasks, limit=10, timeout=None)`` runs a worker in this process until it is stopped
(SIGTERM, Ctrl-C) or ``timeout`` seconds pass; ``actorflow worker module:task ...`` starts one
from the command line. Where runs are queued is configured by ``ACTORFLOW_BROKER_URL`` (a SQLite
file under ``ACTORFLOW_HOME`` by default, or ``redis://host:port/db``).
"""

from ._core import fixup_module_metadata as _fixup_module_metadata
from ._queue import TaskWorker as TaskWorker
from ._queue import WorkerStatistics as WorkerStatistics
from ._queue import serve as serve

__all__ = ("TaskWorker", "WorkerStatistics", "serve")

_fixup_module_metadata(__name__, globals())
