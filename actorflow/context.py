"""Run context, as in ``prefect.context``: which task run or flow run the running code is in."""

from ._core import FlowRunContext as FlowRunContext
from ._core import TaskRunContext as TaskRunContext
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import get_run_context as get_run_context
from ._core import tags as tags

__all__ = ("FlowRunContext", "TaskRunContext", "get_run_context", "tags")

_fixup_module_metadata(__name__, globals())
