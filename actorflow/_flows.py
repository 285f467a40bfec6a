"""``@flow`` and the :class:`Flow` object: a function whose runs supervise task runs."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from ._core import (
    FlowRun,
    Signature,
    TaskRunner,
    current_run,
    drive_flow_async,
    drive_flow_sync,
    format_run_name,
    install_print_redirect,
)
from ._options import (
    check_hooks,
    check_not_method_wrapper,
    check_retries,
    check_retry_delay,
    check_run_name,
    check_timeout,
)

P = ParamSpec("P")
R = TypeVar("R")

_ADJECTIVES = (
    "amber", "brave", "calm", "daring", "eager", "fancy", "gentle", "happy", "icy", "jolly",
    "keen", "lively", "merry", "nimble", "olive", "proud", "quick", "rapid", "steady", "tidy",
)  # fmt: skip
_NOUNS = (
    "otter", "falcon", "badger", "heron", "lynx", "marten", "newt", "orca", "panda", "quail",
    "raven", "seal", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "ibis", "gecko",
)  # fmt: skip
_INVALID_NAME_CHARS = "/%<>&"


class InvalidNameError(ValueError):
    """A flow name contains a character that is not allowed."""


class Flow(Generic[P, R]):
    """A function whose runs are supervisor actors for the task runs they submit."""

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        version: str | None = None,
        flow_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: float | None = None,
        task_runner: TaskRunner | None = None,
        description: str | None = None,
        timeout_seconds: float | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        cache_result_in_memory: bool = True,
        log_prints: bool | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_cancellation: Iterable[Callable[..., Any]] | None = None,
        on_crashed: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
    ) -> None:
        check_not_method_wrapper("flow", fn)
        if not callable(fn):
            raise TypeError(f"@flow needs a callable, got {type(fn).__name__}")
        if name is not None and not isinstance(name, str):
            hint = " Perhaps you meant to call it?" if callable(name) else ""
            raise TypeError(
                f"Expected string for flow parameter 'name'; got {type(name).__name__} "
                f"instead.{hint}"
            )
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        fn_name = getattr(fn, "__name__", "unknown")
        self.name = name or (
            "unknown-lambda" if fn_name == "<lambda>" else fn_name.replace("_", "-")
        )
        bad = [c for c in _INVALID_NAME_CHARS if c in self.name]
        if bad:
            raise InvalidNameError(
                f"Name {self.name!r} contains an invalid character {bad[0]!r}: flow names "
                f"may not contain any of {_INVALID_NAME_CHARS!r}"
            )
        self.version = version
        self.description = description or inspect.getdoc(fn)
        owner = f"flow {self.name!r}"
        self.flow_run_name = flow_run_name
        self.retries = check_retries(owner, retries)
        self.retry_delay_seconds = check_retry_delay(owner, retry_delay_seconds, None)[0]
        if task_runner is not None and not isinstance(task_runner, TaskRunner):
            if isinstance(task_runner, type) and issubclass(task_runner, TaskRunner):
                task_runner = task_runner()
            else:
                raise TypeError(
                    f"task_runner must be a TaskRunner instance, got {type(task_runner).__name__}"
                )
        self.task_runner = task_runner
        self.timeout_seconds = check_timeout(owner, timeout_seconds)
        self.validate_parameters = validate_parameters
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.cache_result_in_memory = cache_result_in_memory
        self.log_prints = log_prints
        if log_prints:
            install_print_redirect()
        self.on_completion_hooks = check_hooks("flow", "on_completion", on_completion)
        self.on_failure_hooks = check_hooks("flow", "on_failure", on_failure)
        self.on_cancellation_hooks = check_hooks("flow", "on_cancellation", on_cancellation)
        self.on_crashed_hooks = check_hooks("flow", "on_crashed", on_crashed)
        self.on_running_hooks = check_hooks("flow", "on_running", on_running)
        self.signature = Signature(fn)
        check_run_name("flow", owner, flow_run_name, self.signature)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return self.signature.bind(args, kwargs)

    def validate(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Check the arguments against the signature (raises ParameterBindError)."""
        if self.validate_parameters:
            self.signature.bind(args, kwargs, apply_defaults=False)
        return args, kwargs

    def run_name_for(self, run: FlowRun) -> str:
        if self.flow_run_name is None:
            import random

            rng = random.Random(run._int_id)
            return f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}"
        return format_run_name(
            "flow",
            f"flow {self.name!r}",
            self.flow_run_name,
            lambda: self.bind(run.args, run.kwargs),
        )

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks = (*self.on_completion_hooks, fn)
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks = (*self.on_failure_hooks, fn)
        return fn

    def on_cancellation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_cancellation_hooks = (*self.on_cancellation_hooks, fn)
        return fn

    def on_crashed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_crashed_hooks = (*self.on_crashed_hooks, fn)
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_running_hooks = (*self.on_running_hooks, fn)
        return fn

    def with_options(self, **options: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed (any ``@flow`` option)."""
        current = {
            "name": self.name,
            "version": self.version,
            "flow_run_name": self.flow_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "task_runner": self.task_runner,
            "description": self.description,
            "timeout_seconds": self.timeout_seconds,
            "validate_parameters": self.validate_parameters,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "cache_result_in_memory": self.cache_result_in_memory,
            "log_prints": self.log_prints,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_cancellation": self.on_cancellation_hooks,
            "on_crashed": self.on_crashed_hooks,
            "on_running": self.on_running_hooks,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {', '.join(sorted(unknown))}")
        current.update(options)
        return Flow(self.fn, **current)

    @overload
    def __call__(
        self: Flow[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow: a sync flow here and now, an async flow when awaited.

        Accepts ``return_state=True`` and ``wait_for=[...]``.
        """
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        if self.is_async:
            return self._call_async(args, kwargs, return_state, wait_for)
        run = FlowRun(self, args, kwargs, current_run.get(), wait_for)
        drive_flow_sync(run)
        return _outcome(run, return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool, wait_for: Any
    ) -> Any:
        run = FlowRun(self, args, kwargs, current_run.get(), wait_for)
        await drive_flow_async(run)
        return _outcome(run, return_state)

    def __repr__(self) -> str:
        return f"Flow(name={self.name!r})"


def _outcome(run: FlowRun, return_state: bool) -> Any:
    state = run.state
    if return_state:
        return state
    if state.is_completed():
        return state.data
    return state.result()


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(__fn: None = None, **options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(task_runner=..., retries=...)``."""
    if __fn is not None:
        return Flow(__fn, **options)
    return functools.partial(Flow, **options)
