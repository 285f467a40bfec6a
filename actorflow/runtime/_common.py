"""What ``runtime.flow_run`` and ``runtime.task_run`` read alike from their run."""

from __future__ import annotations

from typing import Any

#: Attributes every run has, and what each reads outside a run.
COMMON: dict[str, Any] = {"id": None, "name": None, "parameters": {}, "run_count": 0, "tags": []}


def common(run: Any, name: str) -> Any:
    """The attribute ``name`` (one of :data:`COMMON`) of ``run``, or its empty value."""
    if run is None:
        empty = COMMON[name]
        return type(empty)() if empty is not None else None
    if name == "id":
        return str(run.id)
    if name == "name":
        return run.name
    if name == "parameters":
        return dict(run.parameters)
    if name == "run_count":
        return run.run_count
    return sorted(run.tags)
