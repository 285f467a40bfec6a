"""``@flow`` and the :class:`Flow` object: a function whose runs supervise task runs."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar, overload

import attrs

from ._core import (
    NOT_RETURNED,
    FlowRun,
    FlowSpec,
    InvalidNameError,
    State,
    TaskRunner,
    ThreadPoolTaskRunner,
    current_run,
    drive_async,
    drive_here,
    format_run_name,
)
from ._definitions import Definition
from ._options import (
    check_reserved,
    check_retries,
    check_retry_delay,
    check_run_name,
    check_timeout,
)
from ._signals import async_flow_signals, sync_flow_signals
from ._validation import ParameterValidator

__all__ = ["Flow", "FlowOptions", "flow"]

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
_INVALID_NAME_CHARS = ["/", "%", "&", ">", "<"]


@attrs.frozen(kw_only=True)
class FlowOptions:
    """Every option of ``@flow``, as given (checked when the flow is made)."""

    name: str | None = None
    version: str | None = None
    flow_run_name: str | Callable[..., str] | None = None
    retries: int | None = None
    retry_delay_seconds: float | None = None
    task_runner: Any = None
    description: str | None = None
    timeout_seconds: float | None = None
    validate_parameters: bool = True
    persist_result: bool | None = None
    result_storage: Any = None
    result_serializer: Any = None
    cache_result_in_memory: bool = True
    log_prints: bool | None = None
    on_completion: Iterable[Callable[..., Any]] | None = None
    on_failure: Iterable[Callable[..., Any]] | None = None
    on_cancellation: Iterable[Callable[..., Any]] | None = None
    on_crashed: Iterable[Callable[..., Any]] | None = None
    on_running: Iterable[Callable[..., Any]] | None = None


class Flow(Definition[P, R]):
    """A function whose runs are supervisor actors for the task runs they submit."""

    kind = "flow"
    Options = FlowOptions
    hook_options = ("on_completion", "on_failure", "on_cancellation", "on_crashed", "on_running")

    options: FlowOptions
    spec: FlowSpec

    def _setup(self) -> None:
        o = self.options
        if o.name is not None and not isinstance(o.name, str):
            hint = ""
            if callable(o.name):
                called = getattr(o.name, "__name__", "name")
                hint = f"Perhaps you meant to call it? e.g. '@flow(name={called}())'"
            raise TypeError(
                f"Expected string for flow parameter 'name'; got {type(o.name).__name__} "
                f"instead. {hint}"
            )
        fn_name = self._fn_name
        name = o.name or ("unknown-lambda" if fn_name == "<lambda>" else fn_name.replace("_", "-"))
        bad = [c for c in _INVALID_NAME_CHARS if c in name]
        if bad:
            raise InvalidNameError(
                f"Name {name!r} contains an invalid character. Must not contain any of: "
                f"{_INVALID_NAME_CHARS}."
            )
        self._name = name
        check_reserved(self.signature)
        owner = f"flow {name!r}"
        self._retries = check_retries(owner, o.retries)
        delay = check_retry_delay(owner, o.retry_delay_seconds, None)[0]
        if callable(delay):
            raise TypeError(f"{owner}: retry_delay_seconds of a flow is a number of seconds")
        self._delay = delay
        self._timeout = check_timeout(owner, o.timeout_seconds)
        check_run_name("flow", owner, o.flow_run_name, self.signature)
        runner = o.task_runner
        if runner is not None and not isinstance(runner, TaskRunner):
            if isinstance(runner, type) and issubclass(runner, TaskRunner):
                runner = runner()
            else:
                raise TypeError(
                    f"task_runner must be a TaskRunner instance, got {type(runner).__name__}"
                )
        self._runner: TaskRunner | None = runner
        self._validator = ParameterValidator(self.fn, name) if o.validate_parameters else None

    def _make_spec(self) -> FlowSpec:
        o = self.options
        validator = self._validator
        return FlowSpec(
            name=self._name,
            run_name=self._run_name,
            custom_run_name=o.flow_run_name is not None,
            task_runner=self._runner,
            persist_result=o.persist_result,
            result_storage=o.result_storage,
            result_serializer=o.result_serializer,
            cache_result_in_memory=o.cache_result_in_memory,
            validate=self._validate if validator is not None else None,
            **self._spec_fields(),
        )

    def _run_name(self, run: FlowRun) -> str:
        template = self.options.flow_run_name
        if template is None:
            # Picked by a multiplicative hash of the id (whose low bits count runs up), so that
            # neighbouring runs get unrelated names; no need to load random for it.
            mixed = (run._int_id * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
            adjective = _ADJECTIVES[(mixed >> 40) % len(_ADJECTIVES)]
            return f"{adjective}-{_NOUNS[(mixed >> 16) % len(_NOUNS)]}"
        return format_run_name(
            "flow", f"flow {self._name!r}", template, lambda: self.bind(run.args, run.kwargs)
        )

    def _validate(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        assert self._validator is not None
        return self._validator.validate(self.signature, args, kwargs)

    # -- what Prefect's Flow shows ----------------------------------------------------------------
    @property
    def task_runner(self) -> TaskRunner:
        """The runner each run duplicates (a ``ThreadPoolTaskRunner`` when none was given)."""
        runner = self._runner
        if runner is None:
            runner = ThreadPoolTaskRunner()
            object.__setattr__(self, "_runner", runner)
        return runner

    @property
    def should_validate_parameters(self) -> bool:
        return bool(self.options.validate_parameters)

    @property
    def persist_result(self) -> bool | None:
        """As Prefect reports it: ``True`` when a ``result_serializer`` implies persisting."""
        o = self.options
        if o.persist_result is None and o.result_serializer is not None:
            return True
        return o.persist_result

    @property
    def version(self) -> str | None:
        """The given version, else (as in Prefect) a hash of the file that defines the flow."""
        given = self.options.version
        if given is not None:
            return given
        try:
            path = inspect.getsourcefile(self._unbound_fn)
            with open(path, "rb") as f:  # type: ignore[arg-type]  # None is caught below
                data = f.read()
        except (OSError, TypeError):
            return None
        import hashlib

        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def on_cancellation(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._add_hook("on_cancellation", fn)

    def on_crashed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._add_hook("on_crashed", fn)

    # -- running --------------------------------------------------------------------------------
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
        self.bind(args, kwargs, False)  # arguments that do not bind raise here, not in the run
        if self.isasync:
            return self._call_async(args, kwargs, return_state, wait_for)
        run, started = self._new_run(args, kwargs, wait_for)
        if not started:
            if run.parent is not None:
                drive_here(run)
            else:
                service = _current_service()
                if service is None:
                    with sync_flow_signals():
                        drive_here(run)
                else:  # a top-level flow in a service: its shutdown may cancel it (and the
                    # server, not the flow, answers SIGTERM)
                    service.track(run)
                    try:
                        drive_here(run)
                    finally:
                        service.untrack(run)
        return _outcome(run, return_state)

    def _new_run(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
    ) -> tuple[FlowRun, bool]:
        """The run of this call, and whether it has run already: a retried parent flow reuses
        the completed subflow run of an earlier attempt (see ``FlowRun.earlier_subflow``)."""
        parent = current_run.get()
        if parent is None or not isinstance(parent, FlowRun):
            return FlowRun(self.spec, args, kwargs, parent, wait_for), False
        key, earlier = parent.earlier_subflow(self.spec)
        if earlier is not None:
            return earlier, True
        run = FlowRun(self.spec, args, kwargs, parent, wait_for)
        parent.record_subflow(key, run)
        return run, False

    async def _call_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], return_state: bool, wait_for: Any
    ) -> Any:
        run, started = self._new_run(args, kwargs, wait_for)
        if not started:
            service = _current_service() if run.parent is None else None
            if service is not None:  # a top-level flow in a service: its shutdown may cancel it
                await service.drive(run)
            elif run.parent is None:
                async with async_flow_signals(run):
                    await drive_async(run)
            else:
                await drive_async(run)
        return _outcome(run, return_state)


def _current_service() -> Any:
    """The service in progress (``actorflow.serving()``), if any: none before its module is
    loaded, which start-up does not do."""
    module = sys.modules.get("actorflow._serving")
    return None if module is None else module.current_service()


def _outcome(run: FlowRun, return_state: bool) -> Any:
    """What a call of a flow gives its caller, as in Prefect: the final state with
    ``return_state=True``; else what the body returned (futures as their runs' states), unless
    it is a State or the body raised: then the final state's result, raising on failure."""
    if return_state:
        return run.state
    returned = run.returned
    if returned is not NOT_RETURNED and not isinstance(returned, State):
        return returned
    return run.state.value()


@overload
def flow(__fn: Callable[P, R]) -> Flow[P, R]: ...
@overload
def flow(__fn: None = None, **options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(__fn: Any = None, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(task_runner=..., retries=...)``."""
    return Flow.decorate(__fn, options)
