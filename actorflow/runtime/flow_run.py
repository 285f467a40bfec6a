"""The current flow run, as in ``prefect.runtime.flow_run`` (read as module attributes)."""

from typing import Any

from .._core import current_flow_run

_ATTRIBUTES = (
    "flow_name",
    "flow_version",
    "id",
    "name",
    "parameters",
    "parent_flow_run_id",
    "root_flow_run_id",
    "run_count",
    "tags",
)


def __getattr__(name: str) -> Any:
    run = current_flow_run()
    if name == "id":
        return None if run is None else str(run.id)
    if name == "name":
        return None if run is None else run.name
    if name == "flow_name":
        return None if run is None else run.spec.name
    if name == "flow_version":
        return None if run is None else run.flow.version
    if name == "parameters":
        return {} if run is None else dict(run.parameters)
    if name == "run_count":
        return 0 if run is None else run.run_count
    if name == "tags":
        return [] if run is None else sorted(run.tags)
    if name == "parent_flow_run_id":
        parent = None if run is None else run.parent
        while parent is not None and not parent.is_flow:
            parent = parent.parent
        return None if parent is None else str(parent.id)
    if name == "root_flow_run_id":
        root: Any = run
        while root is not None and root.parent is not None:
            root = root.parent
        return None if root is None else str(root.id)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_ATTRIBUTES)
