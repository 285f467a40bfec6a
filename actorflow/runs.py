"""Run records: observe every state transition of the runs created in a block of code."""

from ._core import RunRecorder as RunRecorder
from ._core import TransitionEvent as TransitionEvent
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import observe as observe

__all__ = ("RunRecorder", "TransitionEvent", "observe")

_fixup_module_metadata(__name__, globals())
