"""Futures of task runs: ``TaskFuture`` (alias ``PrefectFuture``), ``wait``, ``as_completed``;
``BackgroundTaskFuture`` (alias ``PrefectDistributedFuture``) for runs queued with ``.delay``."""

from ._core import DoneAndNotDoneFutures as DoneAndNotDoneFutures
from ._core import TaskFuture as TaskFuture
from ._core import TaskFutureList as TaskFutureList
from ._core import as_completed as as_completed
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import wait as wait
from ._queue import BackgroundTaskFuture as BackgroundTaskFuture

#: Prefect's names, so that ported code keeps working.
PrefectFuture = TaskFuture
PrefectFutureList = TaskFutureList
PrefectDistributedFuture = BackgroundTaskFuture

__all__ = (
    "BackgroundTaskFuture",
    "DoneAndNotDoneFutures",
    "PrefectDistributedFuture",
    "PrefectFuture",
    "PrefectFutureList",
    "TaskFuture",
    "TaskFutureList",
    "as_completed",
    "wait",
)

_fixup_module_metadata(__name__, globals())
