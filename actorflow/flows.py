"""Flows, as in ``prefect.flows``: ``flow``, ``Flow``."""

from ._core import fixup_module_metadata as _fixup_module_metadata
from ._flows import Flow as Flow
from ._flows import flow as flow

__all__ = ("Flow", "flow")

_fixup_module_metadata(__name__, globals())
