"""``@task`` and the :class:`Task` object: calling, submitting and mapping a task."""

from __future__ import annotations

import copy
import functools
import inspect
import types
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from ._core import (
    NOT_SET,
    ParameterBindError,
    Signature,
    State,
    TaskFuture,
    TaskFutureList,
    TaskRun,
    allow_failure,
    current_flow_run,
    current_run,
    current_tags,
    drive_async,
    drive_sync,
    format_run_name,
    install_print_redirect,
    map_over,
    mappable,
    quote,
    unmapped,
)
from ._identity import TaskIdentity, task_identity
from ._options import (
    check_hooks,
    check_not_method_wrapper,
    check_reserved,
    check_retries,
    check_retry_delay,
    check_run_name,
    check_timeout,
)

if TYPE_CHECKING:
    import datetime

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A function whose every run is an actor with a recorded state lifecycle.

    Call it to run it here and get its result (async tasks give an awaitable); ``submit`` and
    ``map`` run it concurrently under the current flow and give futures.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_policy: Any = NOT_SET,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: Any = None,
        retry_jitter_factor: float | None = None,
        persist_result: bool | None = None,
        result_storage: Any = None,
        result_serializer: Any = None,
        result_storage_key: str | None = None,
        cache_result_in_memory: bool = True,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
        retry_condition_fn: Callable[..., Any] | None = None,
        cache_unhashable: str = "error",
    ) -> None:
        check_not_method_wrapper("task", fn)
        if not callable(fn):
            raise TypeError(f"@task needs a callable, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn) or (
            not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)
        )
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.description = description or inspect.getdoc(fn)
        self.tags = frozenset(tags or ())
        self.version = version
        owner = f"task {self.name!r}"
        self.task_run_name = task_run_name
        self.retries = check_retries(owner, retries)
        if retry_condition_fn is not None and not callable(retry_condition_fn):
            raise TypeError(
                "Expected `retry_condition_fn` to be callable, got "
                f"{type(retry_condition_fn).__name__} instead."
            )
        self._retry_delay_option = retry_delay_seconds
        delay, jitter = check_retry_delay(owner, retry_delay_seconds, retry_jitter_factor)
        if callable(delay):
            delay = check_retry_delay(owner, list(delay(self.retries)), None)[0]
        self.retry_delay_seconds = delay
        self.retry_jitter_factor = jitter
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = check_timeout(owner, timeout_seconds)
        self.log_prints = log_prints
        if log_prints:
            install_print_redirect()
        self.on_completion_hooks = check_hooks("task", "on_completion", on_completion)
        self.on_failure_hooks = check_hooks("task", "on_failure", on_failure)
        self.on_running_hooks = check_hooks("task", "on_running", on_running)
        # Result and cache options, kept as given so that with_options can copy them.
        self.cache_policy = cache_policy
        self.cache_key_fn = cache_key_fn
        self.cache_expiration = cache_expiration
        self.persist_result = persist_result
        self.result_storage = result_storage
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
        self.cache_result_in_memory = cache_result_in_memory
        self.refresh_cache = bool(refresh_cache)
        self.cache_unhashable = cache_unhashable
        self._signature: Signature | None = None
        self._task_key: str | None = None
        # Made now, once: copies bound to instances share it, and so do concurrent first runs.
        self._identity = task_identity(fn, self.name)
        self._instance: Any = None  # set on copies bound to an instance (tasks as methods)
        check_reserved(self.signature)
        check_run_name("task", owner, task_run_name, self.signature)
        # Imported here: a script that defines no task never loads the caching machinery.
        from ._cache import build_cache

        self.cache = build_cache(self)

    # -- introspection --------------------------------------------------------------------------
    @property
    def signature(self) -> Signature:
        sig = self._signature
        if sig is None:
            sig = self._signature = Signature(self.fn)
        return sig

    @property
    def identity(self) -> TaskIdentity:
        """Who this task is in every process: import name, ``name=`` and bound values."""
        return self._identity

    @property
    def task_key(self) -> str:
        """A stable key: the task's short name and a hash of its identity and source, the same
        in every process that loads the same code (a script run as ``__main__`` included)."""
        key = self._task_key
        if key is None:
            from ._cache import identity_digest

            key = self._task_key = self.identity.task_key(lambda: identity_digest(self.identity))
        return key

    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """Arguments by parameter name (a method's instance appears as ``self``)."""
        if self._instance is not None:
            unbound = Signature(self.fn.__func__)  # type: ignore[attr-defined]
            return unbound.bind((self._instance, *args), kwargs, apply_defaults)
        return self.signature.bind(args, kwargs, apply_defaults)

    def run_name_for(self, run: TaskRun) -> str:
        template = self.task_run_name
        if template is None:
            if run.flow is None:
                return self.name
            return f"{self.name}-{run._int_id & 0xFFF:03x}"
        return format_run_name(
            "task", f"task {self.name!r}", template, lambda: self.bind(run.args, run.kwargs)
        )

    # hooks as decorators: @my_task.on_completion
    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_completion_hooks = (*self.on_completion_hooks, fn)
        return fn

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_failure_hooks = (*self.on_failure_hooks, fn)
        return fn

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.on_running_hooks = (*self.on_running_hooks, fn)
        return fn

    def __get__(self, instance: Any, owner: Any = None) -> Task[P, R]:
        # A task defined on a class is bound like a method.
        if instance is None:
            return self
        bound = copy.copy(self)
        bound.fn = types.MethodType(self.fn, instance)  # type: ignore[assignment]
        bound._signature = None
        bound._instance = instance
        return bound

    def with_options(self, **options: Any) -> Task[P, R]:
        """A copy of this task with some options changed (any ``@task`` option)."""
        current = {
            "name": self.name,
            "description": self.description,
            "tags": set(self.tags),
            "version": self.version,
            "cache_policy": self.cache_policy,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "task_run_name": self.task_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self._retry_delay_option,
            "retry_jitter_factor": self.retry_jitter_factor,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "result_storage_key": self.result_storage_key,
            "cache_result_in_memory": self.cache_result_in_memory,
            "timeout_seconds": self.timeout_seconds,
            "log_prints": self.log_prints,
            "refresh_cache": self.refresh_cache,
            "on_completion": self.on_completion_hooks,
            "on_failure": self.on_failure_hooks,
            "on_running": self.on_running_hooks,
            "retry_condition_fn": self.retry_condition_fn,
            "cache_unhashable": self.cache_unhashable,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {', '.join(sorted(unknown))}")
        current.update(options)
        return Task(self.fn, **current)

    # -- running --------------------------------------------------------------------------------
    @overload
    def __call__(
        self: Task[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here. Accepts ``wait_for=[...]`` and ``return_state=True``."""
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        if self.is_async:
            return self._call_async(args, kwargs, wait_for, return_state)
        run = TaskRun(self, args, kwargs, current_run.get(), current_flow_run(), wait_for)
        drive_sync(run)
        return _outcome(run, return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any, return_state: bool
    ) -> Any:
        run = TaskRun(self, args, kwargs, current_run.get(), current_flow_run(), wait_for)
        await drive_async(run)
        return _outcome(run, return_state)

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Start a run under the current flow and return its :class:`TaskFuture`.

        Accepts ``wait_for=[...]`` and ``return_state=True`` (which waits and returns the
        final state). Outside a flow this raises, as in Prefect: use ``.delay`` there.
        """
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        parent = current_run.get()
        flow: Any = parent
        while flow is not None and not flow.is_flow:
            flow = flow.parent
        if flow is None:
            raise RuntimeError(
                "Unable to determine task runner to use for submission. If you are submitting "
                "a task outside of a flow, please use `.delay` to submit the task run for "
                "deferred execution."
            )
        run = TaskRun(self, args, kwargs, parent, flow, wait_for)
        flow.submit(run, off_loop=return_state and self._blocks_own_loop(flow))
        future: TaskFuture[R] = TaskFuture(run)
        if return_state:
            future.wait()
            return future.state
        return future

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """Submit one run per element of the iterable arguments; a :class:`TaskFutureList`.

        Any iterable but ``str``, ``bytes`` and file objects is mapped (a dict maps over its
        keys, as in Prefect); ``unmapped(x)`` and non-iterables are passed whole to every run.
        Futures given directly as arguments are resolved first, so their results can be mapped.
        """
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        flow = current_flow_run()
        if flow is None:
            raise RuntimeError(
                "Unable to determine task runner to use for mapped task runs. If you are "
                "mapping a task outside of a flow, please provide `deferred=True` to submit "
                "the mapped task runs for deferred execution."
            )
        sig = self.signature
        params = sig.expand_var_kwargs(sig.bind(args, kwargs, apply_defaults=False))
        wrappers: dict[str, type] = {}
        for key, value in params.items():
            if type(value) in (allow_failure, quote):
                wrappers[key] = type(value)
                value = value.value
            if type(value) is TaskFuture:
                value = value.result()
            elif isinstance(value, State):
                value = value.result()
            params[key] = value
        expanded = map_over(self.name, params, mappable)
        if wrappers:
            for item in expanded:
                for key, wrapper in wrappers.items():
                    item[key] = wrapper(item[key])
        parent = current_run.get()
        futures: TaskFutureList[R] = TaskFutureList()
        append = futures.append
        to_call = sig.to_call
        submit = flow.submit
        off_loop = return_state and self._blocks_own_loop(flow)
        for item in expanded:
            call_args, call_kwargs = to_call(item)
            run = TaskRun(self, call_args, call_kwargs, parent, flow, wait_for)
            submit(run, off_loop=off_loop)
            append(TaskFuture(run))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def _blocks_own_loop(self, flow: Any) -> bool:
        # return_state=True waits here. For an async task on the flow's own loop that would
        # deadlock, so such runs go to the runtime loop instead.
        loop = flow.loop
        return self.is_async and loop is not None and loop.on_loop_thread()

    def __repr__(self) -> str:
        return f"Task(name={self.name!r}, fn={getattr(self.fn, '__qualname__', self.fn)!r})"


def _outcome(run: TaskRun, return_state: bool) -> Any:
    if not return_state:
        completed, value = run.completed_value()
        if completed:
            return value
    state = run.state
    if return_state:
        return state
    if state.is_completed():
        return state.data
    if state.is_pending():
        return None  # NotReady: the run never ran, as in Prefect's result mode
    return state.result()


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(__fn: None = None, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(retries=2, ...)``."""
    if __fn is not None:
        return Task(__fn, **options)
    return functools.partial(Task, **options)


def _apply_tags(task: Task[Any, Any]) -> frozenset[str]:
    return task.tags | current_tags.get()


__all__ = ["ParameterBindError", "Task", "task", "unmapped"]
