"""Run records: observe every state transition of the runs created in a block of code."""

from typing import TYPE_CHECKING, Any

from ._core import RunRecorder as RunRecorder
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import observe as observe

if TYPE_CHECKING:
    from ._core import TransitionEvent as TransitionEvent

__all__ = ("RunRecorder", "TransitionEvent", "observe")

_fixup_module_metadata(__name__, globals())


def __getattr__(name: str) -> Any:
    # Made by the first transition observed, or when first asked for.
    if name == "TransitionEvent":
        from ._core import TransitionEvent

        globals()[name] = TransitionEvent
        _fixup_module_metadata(__name__, {"__all__": (name,), name: TransitionEvent})
        return TransitionEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
