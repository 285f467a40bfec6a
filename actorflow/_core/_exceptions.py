"""The exceptions actorflow raises, each naming the run, argument or transition at fault."""

from __future__ import annotations


class ActorflowException(Exception):
    """Base class for every error actorflow raises on its own behalf."""


class InvalidStateTransition(ActorflowException, RuntimeError):
    """A run was asked to move to a state its state machine does not allow."""


class UnfinishedRun(ActorflowException):
    """The result of a run was requested before the run reached a final state."""


class PausedRun(ActorflowException):
    """The result of a paused run was requested."""


class FailedRun(ActorflowException):
    """A run failed without an exception of its own to re-raise (for example a derived state)."""


class CrashedRun(ActorflowException):
    """A run was interrupted by something outside its own code (a BaseException, a dead worker)."""


class CancelledRun(ActorflowException):
    """A run was cancelled before it could finish."""


class TaskRunTimeoutError(ActorflowException, TimeoutError):
    """A task run exceeded its ``timeout_seconds``."""


class FlowRunTimeoutError(ActorflowException, TimeoutError):
    """A flow run exceeded its ``timeout_seconds``."""


class UpstreamTaskError(ActorflowException):
    """A task could not run because an upstream run it depends on did not complete."""


class MappingLengthMismatch(ActorflowException, ValueError):
    """``Task.map`` received iterable arguments of different lengths."""


class MappingMissingIterable(ActorflowException, ValueError):
    """``Task.map`` received no iterable argument to map over."""


class ParameterBindError(ActorflowException, TypeError):
    """The arguments given to a task or flow do not fit its signature."""


class ParameterTypeError(ActorflowException, TypeError):
    """A flow's parameters do not fit its annotations and cannot be coerced to them."""


class InvalidNameError(ActorflowException, ValueError):
    """A flow's name holds a character that is not allowed."""


class ConfigurationError(ActorflowException):
    """Options that do not work together (e.g. SERIALIZABLE isolation without a lock manager)."""


class SerializationError(ActorflowException):
    """A result could not be serialized with the serializer chosen for it."""


class MissingResult(ActorflowException):
    """A state holds no result to give (results that were not kept)."""


class ReservedArgumentError(ActorflowException, TypeError):
    """A task or flow function uses a parameter name that calls reserve (``wait_for``...)."""


class MissingContextError(ActorflowException, RuntimeError):
    """An API that needs an active run was called outside of one."""


class BlockingWaitOnEventLoop(ActorflowException, RuntimeError):
    """A blocking wait was attempted on the event loop thread that must complete the awaited run."""


class TerminationSignal(SystemExit):
    """SIGTERM, raised in the thread of a top-level flow running on the main thread (Prefect's
    ``TerminationSignal``): the flow's runs end Crashed or Cancelled, what the journal and the
    queue hold is written, and the signal then takes its ordinary effect. Should the program's
    own handler let the process live, this propagates, and, uncaught, exits the interpreter
    with status ``128 + signal``."""

    def __init__(self, signal: int) -> None:
        super().__init__(128 + signal)
        self.signal = signal

    def __reduce__(self) -> tuple[type[TerminationSignal], tuple[int]]:
        return (type(self), (self.signal,))

    def __str__(self) -> str:
        import signal as signals

        return f"terminated by {signals.Signals(self.signal).name}"


class SyncCallOnEventLoopWarning(RuntimeWarning):
    """A sync task or flow was called from async code on an event loop's thread: its body runs
    there, and the loop (every other request, every other flow on it) waits until it ends."""


class Interrupt(BaseException):
    """Raised into sync code interrupted from another thread (see ``_interrupt.Interruptible``).

    A BaseException, so that user code's ``except Exception`` does not swallow it; each
    interrupted call raises a subclass of its own, so a nested call never mistakes another's
    interrupt for its own.
    """


class FlowDeadlineInterrupt(Interrupt):
    """Raised inside a sync flow's thread at the flow's deadline."""


class TaskDeadlineInterrupt(Interrupt):
    """Raised inside a sync task body that outlived its ``timeout_seconds``."""
