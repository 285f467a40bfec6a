"""actorflow's self-contained core: run actors, supervisors, futures, states and the backend seam.

Modules above the core use only what this module exports; the core imports nothing above it.
"""

from typing import TYPE_CHECKING, Any

from ._actor import Actor as Actor
from ._actor import Cancel as Cancel
from ._bridge import LoopGroup as LoopGroup
from ._bridge import call_off_loop as call_off_loop
from ._bridge import run_coroutine_sync as run_coroutine_sync
from ._bridge import to_thread as to_thread
from ._callables import Signature as Signature
from ._callables import format_run_name as format_run_name
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._clock import VirtualClock as VirtualClock
from ._clock import current_clock as current_clock
from ._clock import use_clock as use_clock
from ._context import FlowRunContext as FlowRunContext
from ._context import TaskRunContext as TaskRunContext
from ._context import current_run as current_run
from ._context import current_tags as current_tags
from ._context import flow_of as flow_of
from ._context import get_run_context as get_run_context
from ._context import get_run_logger as get_run_logger
from ._context import logger_for as logger_for
from ._context import tags as tags
from ._drive import CRASH as CRASH
from ._drive import ERR as ERR
from ._drive import INVOKE as INVOKE
from ._drive import OK as OK
from ._drive import TIMEOUT as TIMEOUT
from ._drive import StartBody as StartBody
from ._drive import Stepper as Stepper
from ._drive import drive_async as drive_async
from ._drive import drive_here as drive_here
from ._drive import drive_queued as drive_queued
from ._drive import drive_sync as drive_sync
from ._exceptions import ActorflowException as ActorflowException
from ._exceptions import BlockingWaitOnEventLoop as BlockingWaitOnEventLoop
from ._exceptions import CancelledRun as CancelledRun
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import CrashedRun as CrashedRun
from ._exceptions import FailedRun as FailedRun
from ._exceptions import FlowRunTimeoutError as FlowRunTimeoutError
from ._exceptions import InvalidNameError as InvalidNameError
from ._exceptions import InvalidStateTransition as InvalidStateTransition
from ._exceptions import MappingLengthMismatch as MappingLengthMismatch
from ._exceptions import MappingMissingIterable as MappingMissingIterable
from ._exceptions import MissingContextError as MissingContextError
from ._exceptions import MissingResult as MissingResult
from ._exceptions import ParameterBindError as ParameterBindError
from ._exceptions import ParameterTypeError as ParameterTypeError
from ._exceptions import PausedRun as PausedRun
from ._exceptions import ReservedArgumentError as ReservedArgumentError
from ._exceptions import SerializationError as SerializationError
from ._exceptions import SyncCallOnEventLoopWarning as SyncCallOnEventLoopWarning
from ._exceptions import TaskRunTimeoutError as TaskRunTimeoutError
from ._exceptions import TerminationSignal as TerminationSignal
from ._exceptions import UnfinishedRun as UnfinishedRun
from ._exceptions import UpstreamTaskError as UpstreamTaskError
from ._exports import fixup_module_metadata as fixup_module_metadata
from ._flow_run import NOT_RETURNED as NOT_RETURNED
from ._flow_run import FlowRun as FlowRun
from ._flow_run import current_flow_run as current_flow_run
from ._futures import DoneAndNotDoneFutures as DoneAndNotDoneFutures
from ._futures import TaskFuture as TaskFuture
from ._futures import TaskFutureList as TaskFutureList
from ._futures import as_completed as as_completed
from ._futures import wait as wait
from ._generators import iterate_async_run as iterate_async_run
from ._generators import iterate_run as iterate_run
from ._interrupt import call_with_deadline as call_with_deadline
from ._pool import WorkerPool as WorkerPool
from ._pool import blocking_region as blocking_region
from ._records import RunRecorder as RunRecorder
from ._records import add_sink as add_sink
from ._records import event_for as event_for
from ._records import observe as observe
from ._records import observers as observers
from ._records import remove_sink as remove_sink
from ._resolve import allow_failure as allow_failure
from ._resolve import map_futures as map_futures
from ._resolve import map_over as map_over
from ._resolve import mappable as mappable
from ._resolve import opaque as opaque
from ._resolve import quote as quote
from ._resolve import unmapped as unmapped
from ._retries import exponential_backoff as exponential_backoff
from ._runner import TaskRunner as TaskRunner
from ._runner import ThreadPoolTaskRunner as ThreadPoolTaskRunner
from ._runtime import Runtime as Runtime
from ._runtime import new_id as new_id
from ._runtime import runtime as runtime
from ._spawn import Loop as Loop
from ._spawn import current_backend as current_backend
from ._spawn import current_loop as current_loop
from ._specs import FlowSpec as FlowSpec
from ._specs import RunCache as RunCache
from ._specs import RunSpec as RunSpec
from ._states import AwaitingConcurrencySlot as AwaitingConcurrencySlot
from ._states import AwaitingRetry as AwaitingRetry
from ._states import Cached as Cached
from ._states import Cancelled as Cancelled
from ._states import Cancelling as Cancelling
from ._states import Completed as Completed
from ._states import Crashed as Crashed
from ._states import Failed as Failed
from ._states import Late as Late
from ._states import NotReady as NotReady
from ._states import Paused as Paused
from ._states import Pending as Pending
from ._states import Retrying as Retrying
from ._states import Running as Running
from ._states import Scheduled as Scheduled
from ._states import State as State
from ._states import StateType as StateType
from ._states import Suspended as Suspended
from ._states import TimedOut as TimedOut
from ._states import raise_state_exception as raise_state_exception
from ._suspend import may_block as may_block
from ._suspend import suspendable as suspendable
from ._task_run import TaskRun as TaskRun


class _NotSet:
    """Marks an option the user did not give (distinct from ``None``)."""

    def __repr__(self) -> str:
        return "NOT_SET"

    def __bool__(self) -> bool:
        return False


NOT_SET = _NotSet()

if TYPE_CHECKING:
    from ._events import TransitionEvent as TransitionEvent
    from ._statistics import ActorStatistics as ActorStatistics
    from ._statistics import PoolStatistics as PoolStatistics
    from ._statistics import SupervisorStatistics as SupervisorStatistics
    from ._task_spec import TaskSpec as TaskSpec

#: Made when first asked for: a first flow run needs no statistics, no transition events (without
#: observers) nor (without tasks) the task spec, and their attrs classes are a good part of the
#: core's import.
_STATISTICS = ("ActorStatistics", "PoolStatistics", "SupervisorStatistics")

__all__ = sorted(
    [n for n in dir() if not n.startswith("_") and n not in ("TYPE_CHECKING", "Any")]
    + [*_STATISTICS, "TaskSpec", "TransitionEvent"]
)


def __getattr__(name: str) -> Any:
    value: Any
    if name == "TaskSpec":
        from ._task_spec import TaskSpec as value
    elif name == "TransitionEvent":
        from ._events import TransitionEvent as value
    elif name in _STATISTICS:
        from . import _statistics

        value = getattr(_statistics, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
