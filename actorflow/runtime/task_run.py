"""The current task run, as in ``prefect.runtime.task_run`` (read as module attributes)."""

from typing import Any

from .._core import TaskRunContext
from ._common import COMMON, common

_ATTRIBUTES = (*COMMON, "task_name")


def __getattr__(name: str) -> Any:
    context = TaskRunContext.get()
    run = None if context is None else context.task_run
    if name in COMMON:
        return common(run, name)
    if name == "task_name":
        return None if run is None else run.spec.name
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_ATTRIBUTES)
