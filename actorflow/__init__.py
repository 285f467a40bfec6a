"""actorflow: Prefect 3's task and flow model on an asyncio/trio-native actor runtime."""

from typing import TYPE_CHECKING

# Public submodules first, so that their objects report those modules as their home.
from . import exceptions, futures, runs, runtime, states, task_runners, testing  # noqa: F401  # `actorflow.states`... without importing each
from ._core import allow_failure, get_run_logger, quote, tags, unmapped
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._flows import Flow, flow
from ._journal._registry import install_from_environment as _install_journal
from .runs import RunRecorder, observe
from .states import State

if TYPE_CHECKING:
    from ._serving import Service, ServiceStatistics, serving
    from ._tasks import Task, task

__version__ = "0.1.0"

__all__ = (
    "Flow",
    "RunRecorder",
    "Service",
    "ServiceStatistics",
    "State",
    "Task",
    "allow_failure",
    "flow",
    "get_run_logger",
    "observe",
    "quote",
    "serving",
    "tags",
    "task",
    "unmapped",
)

_fixup_module_metadata(__name__, globals())


def __getattr__(name: str) -> object:
    # The service lifecycle loads when first asked for: a script never pays for it. Tasks load
    # with the first script that asks for ``task``: one of flows alone does without them.
    if name in ("Service", "ServiceStatistics", "serving"):
        from . import _serving

        lazy = {n: getattr(_serving, n) for n in ("Service", "ServiceStatistics", "serving")}
    elif name in ("Task", "task"):
        from . import _tasks

        lazy = {"Task": _tasks.Task, "task": _tasks.task}
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _fixup_module_metadata(__name__, {"__all__": tuple(lazy), **lazy})
    globals().update(lazy)
    return lazy[name]


_install_journal()  # the journal ACTORFLOW_JOURNAL names, made by the first run
