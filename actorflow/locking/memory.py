"""Locks within one process, as Prefect's ``prefect.locking.memory``."""

from .._core import fixup_module_metadata as _fixup_module_metadata
from .._transactions._store import MemoryLockManager as MemoryLockManager

__all__ = ("MemoryLockManager",)

_fixup_module_metadata(__name__, globals())
