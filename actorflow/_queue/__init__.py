"""Background runs on a durable queue: ``Task.delay`` produces them, task workers consume them.

See ``_broker.py`` for the broker interface and its guarantees, ``_sqlite.py`` and ``_redis.py``
for the backends, ``_client.py`` for the producing side and ``_worker.py`` for the consuming one.
"""

from ._broker import Broker as Broker
from ._broker import QueueSettings as QueueSettings
from ._broker import settings as settings
from ._brokers import broker as broker
from ._brokers import close_brokers as close_brokers
from ._client import BackgroundTaskFuture as BackgroundTaskFuture
from ._client import client as client
from ._client import close_clients as close_clients
from ._client import delay_runs as delay_runs
from ._worker import TaskWorker as TaskWorker
from ._worker import WorkerStatistics as WorkerStatistics
from ._worker import serve as serve

__all__ = [
    "BackgroundTaskFuture",
    "Broker",
    "QueueSettings",
    "TaskWorker",
    "WorkerStatistics",
    "broker",
    "client",
    "close_brokers",
    "close_clients",
    "delay_runs",
    "reset",
    "serve",
    "settings",
]


def reset() -> None:
    """Write pending runs, stop the clients' threads and close every broker (tests)."""
    close_clients()
    close_brokers()
