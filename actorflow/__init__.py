"""actorflow: Prefect 3's task and flow model on an asyncio/trio-native actor runtime."""

from ._core import (
    RunRecorder,
    allow_failure,
    get_run_logger,
    observe,
    quote,
    tags,
    unmapped,
)
from ._core import State as State
from ._flows import Flow, flow
from ._tasks import Task, task

__version__ = "0.1.0"

__all__ = (
    "Flow",
    "RunRecorder",
    "State",
    "Task",
    "allow_failure",
    "flow",
    "get_run_logger",
    "observe",
    "quote",
    "tags",
    "task",
    "unmapped",
)
