"""Tasks, as in ``prefect.tasks``: ``task``, ``Task``, ``exponential_backoff``,
``task_input_hash``."""

from typing import TYPE_CHECKING, Any

from . import Task as Task  # through the package: it loads tasks, and names their home
from . import task as task
from ._core import exponential_backoff as exponential_backoff
from ._core import fixup_module_metadata as _fixup_module_metadata

if TYPE_CHECKING:
    from ._cache._policies import task_input_hash as task_input_hash

__all__ = ("Task", "exponential_backoff", "task", "task_input_hash")

_fixup_module_metadata(__name__, globals())


def __getattr__(name: str) -> Any:
    # The caching machinery loads on first use.
    if name == "task_input_hash":
        from ._cache._policies import task_input_hash

        return task_input_hash
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
