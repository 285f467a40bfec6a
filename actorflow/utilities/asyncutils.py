"""Async helpers, as in ``prefect.utilities.asyncutils``."""

from .._core import fixup_module_metadata as _fixup_module_metadata
from .._serving import run_sync_in_worker_thread as run_sync_in_worker_thread

__all__ = ("run_sync_in_worker_thread",)

_fixup_module_metadata(__name__, globals())
