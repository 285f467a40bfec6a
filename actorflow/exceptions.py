"""Exceptions raised by actorflow."""

from typing import TYPE_CHECKING, Any

from ._core import ActorflowException as ActorflowException
from ._core import BlockingWaitOnEventLoop as BlockingWaitOnEventLoop
from ._core import CancelledRun as CancelledRun
from ._core import ConfigurationError as ConfigurationError
from ._core import CrashedRun as CrashedRun
from ._core import FailedRun as FailedRun
from ._core import FlowRunTimeoutError as FlowRunTimeoutError
from ._core import InvalidNameError as InvalidNameError
from ._core import InvalidStateTransition as InvalidStateTransition
from ._core import MappingLengthMismatch as MappingLengthMismatch
from ._core import MappingMissingIterable as MappingMissingIterable
from ._core import MissingContextError as MissingContextError
from ._core import MissingResult as MissingResult
from ._core import ParameterBindError as ParameterBindError
from ._core import ParameterTypeError as ParameterTypeError
from ._core import PausedRun as PausedRun
from ._core import ReservedArgumentError as ReservedArgumentError
from ._core import SerializationError as SerializationError
from ._core import TaskRunTimeoutError as TaskRunTimeoutError
from ._core import TerminationSignal as TerminationSignal
from ._core import UnfinishedRun as UnfinishedRun
from ._core import UpstreamTaskError as UpstreamTaskError
from ._core import fixup_module_metadata as _fixup_module_metadata

if TYPE_CHECKING:
    from ._cache._hashing import CacheKeyError as CacheKeyError
    from ._cache._hashing import UnhashableInput as UnhashableInput

__all__ = (
    "ActorflowException",
    "BlockingWaitOnEventLoop",
    "CacheKeyError",
    "CancelledRun",
    "ConfigurationError",
    "CrashedRun",
    "FailedRun",
    "FlowRunTimeoutError",
    "InvalidNameError",
    "InvalidStateTransition",
    "MappingLengthMismatch",
    "MappingMissingIterable",
    "MissingContextError",
    "MissingResult",
    "ParameterBindError",
    "ParameterTypeError",
    "PausedRun",
    "ReservedArgumentError",
    "SerializationError",
    "TaskRunTimeoutError",
    "TerminationSignal",
    "UnfinishedRun",
    "UnhashableInput",
    "UpstreamTaskError",
)

_fixup_module_metadata(__name__, globals())


def __getattr__(name: str) -> Any:
    # The cache's errors load with the caching machinery, on first use.
    if name in ("CacheKeyError", "UnhashableInput"):
        from ._cache import _hashing

        value = getattr(_hashing, name)
        globals()[name] = value
        _fixup_module_metadata(__name__, {"__all__": (name,), name: value})
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
