"""``@task`` and the :class:`Task` object: calling, submitting and mapping a task."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, final, overload

import attrs

from ._core import (
    NOT_SET,
    State,
    TaskFuture,
    TaskFutureList,
    TaskRun,
    TaskSpec,
    allow_failure,
    current_flow_run,
    current_run,
    drive_async,
    drive_here,
    flow_of,
    format_run_name,
    iterate_async_run,
    iterate_run,
    map_over,
    mappable,
    may_block,
    quote,
    suspendable,
)
from ._definitions import Definition
from ._identity import TaskIdentity, task_identity
from ._options import (
    check_hooks,
    check_reserved,
    check_retries,
    check_retry_delay,
    check_run_name,
    check_timeout,
)

if TYPE_CHECKING:
    import datetime

    from ._cache import TaskCache

__all__ = ["Task", "TaskOptions", "task"]

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen(kw_only=True)
class TaskOptions:
    """Every option of ``@task``, as given (checked when the task is made)."""

    name: str | None = None
    description: str | None = None
    tags: Iterable[str] | None = None
    version: str | None = None
    cache_policy: Any = NOT_SET
    cache_key_fn: Callable[..., str | None] | None = None
    cache_expiration: datetime.timedelta | None = None
    task_run_name: str | Callable[..., str] | None = None
    retries: int | None = None
    retry_delay_seconds: Any = None
    retry_jitter_factor: float | None = None
    persist_result: bool | None = None
    result_storage: Any = None
    result_serializer: Any = None
    result_storage_key: str | None = None
    cache_result_in_memory: bool = True
    timeout_seconds: float | None = None
    log_prints: bool | None = None
    refresh_cache: bool | None = None
    on_completion: Iterable[Callable[..., Any]] | None = None
    on_failure: Iterable[Callable[..., Any]] | None = None
    on_running: Iterable[Callable[..., Any]] | None = None
    #: Transaction hooks, ``hook(txn)``: when the run's transaction commits or rolls back.
    on_commit: Iterable[Callable[..., Any]] | None = None
    on_rollback: Iterable[Callable[..., Any]] | None = None
    retry_condition_fn: Callable[..., Any] | None = None
    cache_unhashable: str = "error"
    #: Accepted so Prefect scripts run; they feed Prefect's flow visualisation and asset
    #: tracking, which actorflow does not have.
    viz_return_value: Any = None
    asset_deps: Any = None


class Task(Definition[P, R]):
    """A function whose every run is an actor with a recorded state lifecycle.

    Call it to run it here and get its result (async tasks give an awaitable); ``submit`` and
    ``map`` run it concurrently under the current flow and give futures.
    """

    kind = "task"
    Options = TaskOptions
    hook_options = ("on_completion", "on_failure", "on_running")

    options: TaskOptions
    spec: TaskSpec

    def _setup(self) -> None:
        o = self.options
        name = o.name or self._fn_name
        owner = f"task {name!r}"
        self._retries = check_retries(owner, o.retries)
        if o.retry_condition_fn is not None and not callable(o.retry_condition_fn):
            raise TypeError(
                "Expected `retry_condition_fn` to be callable, got "
                f"{type(o.retry_condition_fn).__name__} instead."
            )
        delay, self._jitter = check_retry_delay(owner, o.retry_delay_seconds, o.retry_jitter_factor)
        if callable(delay):
            delay = check_retry_delay(owner, list(delay(self._retries)), None)[0]
        self._delay = delay
        self._timeout = check_timeout(owner, o.timeout_seconds)
        check_reserved(self.signature)
        check_hooks("task", "on_commit", o.on_commit)
        check_hooks("task", "on_rollback", o.on_rollback)
        check_run_name("task", owner, o.task_run_name, self.signature)
        self._tags = set(o.tags or ())
        # Made now, once: copies bound to instances share it, and so do concurrent first runs.
        self._identity: TaskIdentity = task_identity(self.fn, name)
        self._task_key: str | None = None
        self.cache: TaskCache | CacheOnDemand | None = _cache_for(self, name)

    def _make_spec(self) -> TaskSpec:
        o = self.options
        name = o.name or self._fn_name
        template = o.task_run_name
        return TaskSpec(
            name=name,
            run_name=None
            if template is None
            else functools.partial(self._run_name, name, template),
            custom_run_name=template is not None,
            retry_jitter=self._jitter,
            retry_condition=o.retry_condition_fn,
            tags=self._tags,
            task_key=self._key,
            cache=self.cache,
            suspends=self._yields is None and self.isasync and may_block(self.fn),
            transactional=bool(o.on_commit or o.on_rollback)
            or getattr(getattr(self.cache, "policy", None), "isolation_level", None) is not None,
            **self._spec_fields(),
        )

    def _run_name(self, name: str, template: Any, run: TaskRun) -> str:
        return format_run_name(
            "task", f"task {name!r}", template, lambda: self.bind(run.args, run.kwargs)
        )

    # -- transaction hooks: hook(txn) ----------------------------------------------------------
    def on_commit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(txn)`` when the transaction of a run of this task commits."""
        return self._add_hook("on_commit", fn)

    def on_rollback(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run ``fn(txn)`` when the transaction of a completed run of this task rolls back."""
        return self._add_hook("on_rollback", fn)

    @property
    def on_commit_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_commit or ())

    @property
    def on_rollback_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_rollback or ())

    # -- what Prefect's Task shows ----------------------------------------------------------------
    @property
    def identity(self) -> TaskIdentity:
        """Who this task is in every process: import name, ``name=`` and bound values."""
        return self._identity

    @property
    def task_key(self) -> str:
        """A stable key: the task's short name and a hash of its identity and source, the same
        in every process that loads the same code (a script run as ``__main__`` included)."""
        return self._key()

    def _key(self) -> str:
        key = self._task_key
        if key is None:
            key = self._task_key = self._identity.task_key(self._values_digest)
        return key

    def _values_digest(self) -> str | None:
        # Only a task with bound values (a partial, a closure) has any: the hashing machinery
        # is loaded for those alone.
        from ._cache import identity_digest

        return identity_digest(self._identity)

    @property
    def cache_policy(self) -> Any:
        """The policy runs are cached by, as Prefect reports it: ``NO_CACHE`` when results are
        not persisted, ``None`` with a ``result_storage_key``, the key function's policy or the
        given one, else ``DEFAULT``."""
        from .cache_policies import DEFAULT, NO_CACHE, CacheKeyFnPolicy

        o = self.options
        if o.persist_result is False:
            return NO_CACHE
        if o.cache_key_fn is not None:
            return CacheKeyFnPolicy(o.cache_key_fn)
        if o.result_storage_key is not None:
            return None
        if o.cache_policy is NOT_SET:
            return DEFAULT
        return NO_CACHE if o.cache_policy is None else o.cache_policy

    @property
    def tags(self) -> set[str]:
        """The task's tags, a set its runs read when they start (as in Prefect, it may be
        changed in place)."""
        return self._tags

    @property
    def persist_result(self) -> bool | None:
        """As Prefect reports it: ``True`` when an option implies persisting (a cache policy
        other than ``NO_CACHE``, a key function, a serializer or a storage key)."""
        from .cache_policies import NO_CACHE

        o = self.options
        if o.persist_result is not None:
            return o.persist_result
        policy = o.cache_policy
        given = policy is not NOT_SET and policy is not None and policy is not NO_CACHE
        if given or o.cache_key_fn or o.result_serializer or o.result_storage_key is not None:
            return True
        return None

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
        if self._yields is not None:
            return self._iterate(args, kwargs, wait_for, return_state)
        if self.isasync:
            return self._call_async(args, kwargs, wait_for, return_state)
        run = _new_run(self.spec, args, kwargs, wait_for)
        drive_here(run)
        return _outcome(run, return_state)

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any, return_state: bool
    ) -> Any:
        run = _new_run(self.spec, args, kwargs, wait_for)
        await drive_async(run)
        return _outcome(run, return_state)

    def _iterate(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any, return_state: bool
    ) -> Any:
        # A generator task's run is iterated by its caller (see _core/_generators.py).
        if return_state:
            raise ValueError("The return_type for a generator task must be 'result'")
        run = TaskRun(self.spec, args, kwargs, current_run.get(), current_flow_run(), wait_for)
        if self._yields == "async":
            return iterate_async_run(run)
        return iterate_run(run)

    def _check_not_generator(self, how: str) -> None:
        if self._yields is not None:
            raise ValueError(
                f"Generator task {self.name!r} cannot be {how}: its items are passed to the "
                "code that iterates it, so call it and iterate the result."
            )

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Start a run under the current flow and return its :class:`TaskFuture`.

        Accepts ``wait_for=[...]`` and ``return_state=True`` (which waits and returns the
        final state). Outside a flow this raises, as in Prefect: use ``.delay`` there.
        """
        wait_for = kwargs.pop("wait_for", None) if "wait_for" in kwargs else None
        return_state = kwargs.pop("return_state", False) if "return_state" in kwargs else False
        if self._yields is not None:
            self._check_not_generator("submitted")
        parent = current_run.get()
        flow: Any = flow_of(parent)
        if flow is None:
            raise RuntimeError(
                "Unable to determine task runner to use for submission. If you are submitting "
                "a task outside of a flow, please use `.delay` to submit the task run for "
                "deferred execution."
            )
        run = TaskRun(self.spec, args, kwargs, parent, flow, wait_for)
        if _may_attach(run.spec):
            _attach(run, True)
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
        deferred = kwargs.pop("deferred", False) if "deferred" in kwargs else False
        if self._yields is not None:
            self._check_not_generator("mapped")
        # Arguments are bound first, as in Prefect: a bad call says so wherever it is made.
        sig = self.signature
        params = sig.expand_var_kwargs(sig.bind(args, kwargs, apply_defaults=False))
        if deferred:
            return self._map_deferred(args, kwargs, wait_for)
        flow = current_flow_run()
        if flow is None:
            raise RuntimeError(
                "Unable to determine task runner to use for mapped task runs. If you are "
                "mapping a task outside of a flow, please provide `deferred=True` to submit "
                "the mapped task runs for deferred execution."
            )
        wrappers: dict[str, type] = {}
        for key, value in params.items():
            # Futures and states given directly are resolved, so their results can be mapped;
            # inside allow_failure a failed one gives its exception (passed whole to every run).
            raise_on_failure = True
            if type(value) in (allow_failure, quote):
                wrappers[key] = type(value)
                raise_on_failure = type(value) is quote
                value = value.value
            if type(value) is TaskFuture:
                value = value.result(raise_on_failure=raise_on_failure)
            elif isinstance(value, State):
                value = value.value(raise_on_failure)
            params[key] = value
        expanded = map_over(self.name, params, mappable)
        if wrappers:
            for item in expanded:
                for key, wrapper in wrappers.items():
                    item[key] = wrapper(item[key])
        parent = current_run.get()
        spec = self.spec
        futures: TaskFutureList[R] = TaskFutureList()
        append = futures.append
        to_call = sig.to_call
        submit = flow.submit
        off_loop = return_state and self._blocks_own_loop(flow)
        attach = _may_attach(spec)
        for item in expanded:
            call_args, call_kwargs = to_call(item)
            run = TaskRun(spec, call_args, call_kwargs, parent, flow, wait_for)
            if attach:
                _attach(run, True)
            submit(run, off_loop=off_loop)
            append(TaskFuture(run))
        if return_state:
            futures.wait()
            return [future.state for future in futures]
        return futures

    def _map_deferred(self, args: Any, kwargs: dict[str, Any], wait_for: Any) -> Any:
        # One background run per element, queued in one batch.
        from ._queue import delay_runs

        sig = self.signature
        params = sig.expand_var_kwargs(sig.bind(args, kwargs, apply_defaults=False))
        calls = [sig.to_call(item) for item in map_over(self.name, params, mappable)]
        return delay_runs(self, calls, wait_for)

    # -- background runs ------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Queue a run for a task worker (``.serve()``, ``actorflow worker``) and return its
        :class:`~actorflow.futures.BackgroundTaskFuture` at once; its first state is
        ``Scheduled``. The arguments are pickled now: one that cannot be fails here, named."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        wait_for: Iterable[Any] | None = None,
        assets: Any = None,
    ) -> Any:
        """:meth:`delay` with the arguments given as a tuple and a dict; ``wait_for`` names
        background futures whose runs must complete first (``assets`` is accepted for
        Prefect's signature and unused)."""
        from ._queue import delay_runs

        if self._yields is not None:
            self._check_not_generator("delayed")
        return delay_runs(self, [(tuple(args or ()), dict(kwargs or {}))], wait_for)[0]

    def serve(self, limit: int | None = 10, timeout: float | None = None) -> Any:
        """Run a task worker for this task here until stopped (SIGTERM, Ctrl-C) or ``timeout``
        seconds pass; from async code, an awaitable of it."""
        from ._queue import serve

        return serve(self, limit=limit, timeout=timeout)

    def _blocks_own_loop(self, flow: Any) -> bool:
        # return_state=True waits here. Inside an async flow's body that wait suspends the body;
        # elsewhere on the flow's own loop (an async task's body) it would deadlock, so such
        # runs go to the runtime loop instead.
        loop = flow.loop
        return self.isasync and loop is not None and loop.on_loop_thread() and not suspendable()


def _outcome(run: TaskRun, return_state: bool) -> Any:
    """What a call of a task gives its caller, as in Prefect: the final state with
    ``return_state=True``; else a State the body returned, as it is; else the result, raising
    the run's exception if it failed."""
    if return_state:
        return run.state
    if run.returned is not None:
        return run.returned
    completed, value = run.completed_value()
    if completed:
        return value
    state = run.state
    if state.is_pending():
        return None  # NotReady: the run never ran, as in Prefect's result mode
    return state.value()


@overload
def task(__fn: Callable[P, R]) -> Task[P, R]: ...
@overload
def task(__fn: None = None, **options: Any) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(__fn: Any = None, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(retries=2, ...)``."""
    return Task.decorate(__fn, options)


_built_lock = threading.Lock()


@final
class CacheOnDemand:
    """The cache of a task whose options say nothing of caching. As in Prefect, its runs
    persist only inside a flow with ``persist_result=True``: the caching machinery is imported,
    and the task's cache made, the first time one does, so a script whose flows do not persist
    never loads it (a fifth of the cost of starting one)."""

    __slots__ = ("_name", "_real", "_task")
    #: Like the cache it stands for: the task said nothing, its flow decides; no policy of its
    #: own (the default one, which sets no isolation level, once built).
    persist: bool | None = None
    policy: Any = None

    def __init__(self, task: Task[Any, Any], name: str) -> None:
        self._task = task
        self._name = name
        self._real: TaskCache | None = None

    def key_for(self, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        flow = run.flow
        if flow is None or not flow.persist_result:
            return None
        return self.built().key_for(run, args, kwargs)

    def built(self) -> TaskCache:
        real = self._real
        if real is None:
            with _built_lock:  # one cache per task: it holds the task's single-flight state
                real = self._real
                if real is None:
                    from ._cache import build_cache

                    real = build_cache(self._task, self._name)
                    assert real is not None  # no option turns it off: see _cache_for
                    self._real = real
        return real

    # Called only with a slot that key_for gave, so the cache exists by then.
    def recall(self, slot: Any) -> tuple[bool, Any]:
        return self.built().recall(slot)

    def read(self, slot: Any) -> Any:
        return self.built().read(slot)

    def claim(self, run: Any, slot: Any) -> Any:
        return self.built().claim(run, slot)

    def acquire(self, slot: Any) -> Any:
        return self.built().acquire(slot)

    def write(self, slot: Any, value: Any) -> Any:
        return self.built().write(slot, value)

    def __getattr__(self, name: str) -> Any:  # the rest of TaskCache's face, for callers above
        return getattr(self.built(), name)


def _cache_for(task: Task[Any, Any], name: str) -> TaskCache | CacheOnDemand | None:
    o = task.options
    if (
        o.cache_policy is NOT_SET
        and o.cache_key_fn is None
        and o.result_storage_key is None
        and o.persist_result is None
        and o.result_storage is None
        and o.result_serializer is None
        and o.cache_expiration is None
        and o.cache_unhashable in ("error", "warn")
    ):
        return CacheOnDemand(task, name)
    # Imported here: a script that defines no cached task never loads the caching machinery.
    from ._cache import build_cache

    return build_cache(task, name)


_TRANSACTION_MODULE = "actorflow._transactions._transaction"


def _may_attach(spec: TaskSpec) -> bool:
    """Whether a run of ``spec`` may need a transaction: one may be open once the transactions
    module is loaded (by a transaction opened, or by a task that needs one); until then, only
    a task with commit or rollback hooks or an isolation level does."""
    return spec.transactional or _TRANSACTION_MODULE in sys.modules


def _attach(run: TaskRun, submitted: bool) -> None:
    """Give a new run its transaction when it needs one (``_transactions.attach``)."""
    module: Any = sys.modules.get(_TRANSACTION_MODULE)
    if module is None:
        from ._transactions import _transaction as module
    module.attach(run, submitted)


def _new_run(
    spec: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
) -> TaskRun:
    """A run of a task called here: the current run is its parent, and its flow theirs."""
    parent = current_run.get()
    run = TaskRun(spec, args, kwargs, parent, flow_of(parent), wait_for)
    if spec.transactional or _TRANSACTION_MODULE in sys.modules:  # _may_attach, inline
        _attach(run, False)
    return run
