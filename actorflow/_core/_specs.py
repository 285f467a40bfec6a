"""What a run needs to know of its task or flow: typed, frozen specs.

``@task`` and ``@flow`` (above the core) check the user's options and build a spec; the core reads
only specs, so it never calls up into ``Task`` or ``Flow``. ``owner`` is the object the user made,
passed through untouched to hooks and retry conditions (Prefect's ``hook(task, task_run,
state)``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

import attrs

from ._states import StateType

__all__ = ["FlowSpec", "RunCache", "RunSpec"]

#: Seconds to wait before each retry: one number, or one per retry (the last one repeats).
RetryDelay = float | list[float] | None
Call = tuple[tuple[Any, ...], dict[str, Any]]
#: ``validate(args, kwargs) -> (args, kwargs)``, raising ParameterBindError/ParameterTypeError.
Validator = Callable[[tuple[Any, ...], dict[str, Any]], Call]


class RunCache(Protocol):
    """What a task run consults around its body (see ``actorflow/_cache``): ``key_for`` names the
    record (``None``: not cached), ``recall`` and ``read`` look in memory and storage, ``claim``
    makes the run the one computing the key in this process (or names the run that is),
    ``acquire`` takes the key's lock shared with other processes and looks again, ``write``
    stores the result. ``read``, ``acquire`` and ``write`` may return awaitables in async
    runs."""

    #: ``None``: the task said nothing, and its runs persist only inside a flow that does.
    persist: bool | None

    def key_for(self, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...
    def recall(self, slot: Any) -> tuple[bool, Any]: ...
    def read(self, slot: Any) -> Any: ...
    def claim(self, run: Any, slot: Any) -> Any: ...
    def acquire(self, slot: Any) -> Any: ...
    def write(self, slot: Any, value: Any) -> Any: ...


@attrs.frozen(kw_only=True)
class RunSpec:
    """The options every run has, for tasks and flows alike."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    #: The Task or Flow the user made: passed to hooks and retry conditions.
    owner: Any
    #: ``bind(args, kwargs, apply_defaults=True) -> parameters``, raising ParameterBindError.
    bind: Callable[..., dict[str, Any]]
    #: ``run_name(run)``: the name of a run (``None``: a task run is named after its task).
    run_name: Callable[[Any], str] | None = None
    #: Whether ``run_name`` is the user's (computed when the run is made) or a default one
    #: (computed when the name is first needed).
    custom_run_name: bool = False
    retries: int = 0
    retry_delay: RetryDelay = None
    retry_jitter: float | None = None
    #: ``retry_condition(owner, run, state) -> bool``; ``None``: always retry.
    retry_condition: Callable[..., Any] | None = None
    timeout: float | None = None
    log_prints: bool | None = None
    #: The tags of the task or flow (read when a run asks: Prefect lets a task's be changed).
    tags: AbstractSet[str] = frozenset()
    on_running: tuple[Callable[..., Any], ...] = ()
    on_completion: tuple[Callable[..., Any], ...] = ()
    on_failure: tuple[Callable[..., Any], ...] = ()
    on_cancellation: tuple[Callable[..., Any], ...] = ()
    on_crashed: tuple[Callable[..., Any], ...] = ()

    def hooks_for(self, state_type: StateType) -> tuple[Callable[..., Any], ...]:
        """The hooks a run ending in ``state_type`` runs."""
        if state_type is StateType.COMPLETED:
            return self.on_completion
        if state_type is StateType.FAILED:
            return self.on_failure
        if state_type is StateType.CANCELLED or state_type is StateType.CANCELLING:
            return self.on_cancellation
        if state_type is StateType.CRASHED:
            return self.on_crashed
        return ()


@attrs.frozen(kw_only=True)
class FlowSpec(RunSpec):
    """A flow's options, as its runs read them."""

    #: A template runner: each flow run works on its own ``duplicate()``; ``None``: threads.
    task_runner: Any = None
    persist_result: bool | None = None
    result_storage: Any = None
    result_serializer: Any = None
    cache_result_in_memory: bool = True
    #: ``validate(args, kwargs) -> (args, kwargs)``: checks and coerces parameters (raising
    #: what the flow run fails with), or ``None``.
    validate: Validator | None = None
