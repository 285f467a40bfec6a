"""Futures of task runs: ``TaskFuture`` (alias ``PrefectFuture``), ``wait``, ``as_completed``;
``BackgroundTaskFuture`` (alias ``PrefectDistributedFuture``) for runs queued with ``.delay``."""

from typing import TYPE_CHECKING, Any

from ._core import DoneAndNotDoneFutures as DoneAndNotDoneFutures
from ._core import TaskFuture as TaskFuture
from ._core import TaskFutureList as TaskFutureList
from ._core import as_completed as as_completed
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import wait as wait

if TYPE_CHECKING:
    from ._queue import BackgroundTaskFuture as BackgroundTaskFuture

    PrefectDistributedFuture = BackgroundTaskFuture

#: Prefect's names, so that ported code keeps working.
PrefectFuture = TaskFuture
PrefectFutureList = TaskFutureList

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


def __getattr__(name: str) -> Any:
    # The background futures bring the queue (pickle, sockets, its brokers): it is imported
    # when they are first asked for, not by every script that imports actorflow.
    if name in ("BackgroundTaskFuture", "PrefectDistributedFuture"):
        from ._queue import BackgroundTaskFuture

        lazy = {"__all__": ("BackgroundTaskFuture",), "BackgroundTaskFuture": BackgroundTaskFuture}
        _fixup_module_metadata(__name__, lazy)
        globals().update(
            BackgroundTaskFuture=BackgroundTaskFuture, PrefectDistributedFuture=BackgroundTaskFuture
        )
        return BackgroundTaskFuture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
