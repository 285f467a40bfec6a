"""actorflow's self-contained core: run actors, supervisors, futures, states and the backend seam.

Modules above the core use only what this module exports; the core imports nothing above it.
"""

from ._actor import Actor, ActorStatistics, Cancel
from ._bridge import default_pool, run_coroutine_sync, runtime_loop
from ._callables import (
    Signature,
    check_hooks,
    check_not_method_wrapper,
    check_reserved,
    check_run_name_option,
    format_run_name,
    source_key,
)
from ._clock import Clock, SystemClock, VirtualClock, current_clock, use_clock
from ._context import (
    current_flow_run,
    current_run,
    current_tags,
    get_run_logger,
    install_print_redirect,
    tags,
)
from ._exceptions import (
    ActorflowException,
    BlockingWaitOnEventLoop,
    CancelledRun,
    CrashedRun,
    FailedRun,
    FlowRunTimeoutError,
    InvalidStateTransition,
    MappingLengthMismatch,
    MappingMissingIterable,
    MissingContextError,
    ParameterBindError,
    PausedRun,
    ReservedArgumentError,
    TaskRunTimeoutError,
    UnfinishedRun,
    UpstreamTaskError,
)
from ._flow_run import FlowRun, SupervisorStatistics, drive_flow_async, drive_flow_sync
from ._futures import DoneAndNotDoneFutures, TaskFuture, TaskFutureList, as_completed, wait
from ._pool import PoolStatistics, WorkerPool
from ._records import RunRecorder, TransitionEvent, observe
from ._resolve import allow_failure, map_over, mappable, quote, unmapped
from ._retries import check_retry_options, exponential_backoff
from ._runner import TaskRunner, ThreadPoolTaskRunner, drive_queued
from ._spawn import current_backend
from ._states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Cancelling,
    Completed,
    Crashed,
    Failed,
    Late,
    NotReady,
    Paused,
    Pending,
    Retrying,
    Running,
    Scheduled,
    State,
    StateType,
    TimedOut,
)
from ._task_run import TaskRun, drive_async, drive_sync


class _NotSet:
    """Marks an option the user did not give (distinct from ``None``)."""

    _instance: "_NotSet | None" = None

    def __repr__(self) -> str:
        return "NOT_SET"

    def __bool__(self) -> bool:
        return False


NOT_SET = _NotSet()

__all__ = [name for name in dir() if not name.startswith("_")]
