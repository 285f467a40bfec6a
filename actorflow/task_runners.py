"""Task runners: where the sync bodies of submitted task runs execute."""

from ._core import TaskRunner as TaskRunner
from ._core import ThreadPoolTaskRunner as ThreadPoolTaskRunner

__all__ = ("TaskRunner", "ThreadPoolTaskRunner")
