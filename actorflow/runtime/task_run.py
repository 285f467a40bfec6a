"""The current task run, as in ``prefect.runtime.task_run`` (read as module attributes)."""

from typing import Any

from .._core import TaskRunContext

_ATTRIBUTES = ("id", "name", "parameters", "run_count", "tags", "task_name")


def __getattr__(name: str) -> Any:
    context = TaskRunContext.get()
    run = None if context is None else context.task_run
    if name == "id":
        return None if run is None else str(run.id)
    if name == "name":
        return None if run is None else run.name
    if name == "task_name":
        return None if run is None else run.spec.name
    if name == "parameters":
        return {} if run is None else dict(run.parameters)
    if name == "run_count":
        return 0 if run is None else run.run_count
    if name == "tags":
        return [] if run is None else sorted(run.tags)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_ATTRIBUTES)
