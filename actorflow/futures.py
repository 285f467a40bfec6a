"""Futures of task runs: ``TaskFuture`` (alias ``PrefectFuture``), ``wait``, ``as_completed``;
``BackgroundTaskFuture`` (alias ``PrefectDistributedFuture``) for runs queued with ``.delay``,
imported on first use (the queue's machinery is not loaded by scripts that never use it)."""

from typing import TYPE_CHECKING, Any

from ._core import DoneAndNotDoneFutures as DoneAndNotDoneFutures
from ._core import TaskFuture as TaskFuture
from ._core import TaskFutureList as TaskFutureList
from ._core import as_completed as as_completed
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import wait as wait

if TYPE_CHECKING:
    from ._queue._client import BackgroundTaskFuture as BackgroundTaskFuture
    from ._queue._client import BackgroundTaskFuture as PrefectDistributedFuture

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


def __getattr__(name: str) -> Any:
    if name in ("BackgroundTaskFuture", "PrefectDistributedFuture"):
        from ._queue._client import BackgroundTaskFuture

        globals().update(BackgroundTaskFuture=BackgroundTaskFuture)
        globals().update(PrefectDistributedFuture=BackgroundTaskFuture)
        names = ("BackgroundTaskFuture",)
        _fixup_module_metadata(__name__, {"__all__": names, names[0]: BackgroundTaskFuture})
        return BackgroundTaskFuture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_fixup_module_metadata(__name__, globals())
