"""The current flow run, as in ``prefect.runtime.flow_run`` (read as module attributes)."""

from typing import Any

from .._core import current_flow_run
from ._common import COMMON, common

_ATTRIBUTES = (*COMMON, "flow_name", "flow_version", "parent_flow_run_id", "root_flow_run_id")


def __getattr__(name: str) -> Any:
    run = current_flow_run()
    if name in COMMON:
        return common(run, name)
    if name == "flow_name":
        return None if run is None else run.spec.name
    if name == "flow_version":
        return None if run is None else run.flow.version
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
