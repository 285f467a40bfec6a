"""The run journal: every flow run and task run of the process, with its states and logs, in
SQLite (``$ACTORFLOW_HOME/journal.db`` by default; see ``docs/journal.md``)."""

from ._core import fixup_module_metadata as _fixup_module_metadata
from ._journal._records import FlowRunSummary as FlowRunSummary
from ._journal._records import JournalStatistics as JournalStatistics
from ._journal._records import LogRecord as LogRecord
from ._journal._records import RunRecord as RunRecord
from ._journal._records import TransitionRecord as TransitionRecord
from ._journal._registry import Subscription as Subscription
from ._journal._registry import current as current
from ._journal._registry import default_path as default_path
from ._journal._registry import disable as disable
from ._journal._registry import enable as enable
from ._journal._registry import open_journal as open_journal
from ._journal._registry import subscribe as subscribe
from ._journal._store import Journal as Journal

__all__ = (
    "FlowRunSummary",
    "Journal",
    "JournalStatistics",
    "LogRecord",
    "RunRecord",
    "Subscription",
    "TransitionRecord",
    "current",
    "default_path",
    "disable",
    "enable",
    "open_journal",
    "subscribe",
)

_fixup_module_metadata(__name__, globals())
