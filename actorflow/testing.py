"""Helpers for testing code that uses actorflow: a virtual clock for retries and expiration."""

from ._core import Clock as Clock
from ._core import SystemClock as SystemClock
from ._core import VirtualClock as VirtualClock
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import use_clock as use_clock

__all__ = ("Clock", "SystemClock", "VirtualClock", "use_clock")

_fixup_module_metadata(__name__, globals())
