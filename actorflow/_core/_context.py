"""Run context: which run the current code belongs to, carried in context variables, and the
run loggers.

Per-run state lives in contextvars so that it follows the code into threads (work items run in a
copy of the submitter's context) and into child tasks, and never leaks between concurrent runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import MissingContextError

if TYPE_CHECKING:
    import uuid

    from ._specs import RunSpec


class Run(Protocol):
    """What this module reads of a run: a TaskRun or a FlowRun (an ``Actor``, whose module is
    above this one), or a worker process's stand-in for one."""

    @property
    def is_flow(self) -> bool: ...
    @property
    def parent(self) -> Run | None: ...
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> RunSpec: ...


#: The innermost run (a TaskRun or a FlowRun) the running code belongs to.
current_run: ContextVar[Run | None] = ContextVar("actorflow_run", default=None)
#: Tags added by ``with tags(...)`` blocks, applied to runs created inside them.
current_tags: ContextVar[frozenset[str]] = ContextVar("actorflow_tags", default=frozenset())


def flow_of(run: Any) -> Any:
    """The flow run ``run`` belongs to (``run`` itself if it is one), looking through task runs
    to their flow; ``None`` outside flows."""
    while run is not None and not run.is_flow:
        run = run.parent
    return run


def current_flow_run() -> Run | None:
    """The flow run that owns the current code, looking through task runs to their flow."""
    return flow_of(current_run.get())  # type: ignore[no-any-return]  # a flow run or None


@contextlib.contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every task and flow run created inside the block."""
    new = current_tags.get() | frozenset(names)
    token = current_tags.set(new)
    try:
        yield new
    finally:
        current_tags.reset(token)


# -- run loggers --------------------------------------------------------------------------------
class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]  # generic only in stubs
    """A logger whose records carry the run they come from (``run_id``, ``run_name``,
    ``run_kind``, ``run_label``: ``Flow run 'name'``)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return msg, kwargs


def logger_for(run: Run) -> RunLoggerAdapter:
    """The logger of ``run``: records carry Prefect's run fields (``task_run_id``,
    ``task_run_name``, ``task_name``, ``flow_run_id``, ``flow_run_name``, ``flow_name``) and
    actorflow's (``run_id``, ``run_name``, ``run_kind``, ``run_label``)."""
    kind = "flow" if run.is_flow else "task"
    name = run.name
    run_id = str(run.id)
    extra: dict[str, Any] = {
        "run_name": name,
        "run_id": run_id,
        "run_kind": kind,
        "run_label": f"{kind.capitalize()} run {name!r}",
        f"{kind}_run_id": run_id,
        f"{kind}_run_name": name,
        f"{kind}_name": run.spec.name,
    }
    if not run.is_flow:
        task_run: Any = run  # a TaskRun (or a worker's stand-in): it knows its flow run
        flow = current_flow_run() if task_run.flow is None else task_run.flow
        if flow is not None:
            extra.update(
                flow_run_id=str(flow.id), flow_run_name=flow.name, flow_name=flow.spec.name
            )
    return RunLoggerAdapter(logging.getLogger(f"actorflow.{kind}_runs"), extra)


class ConsoleFallback(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in stubs
    """Shows actorflow's records on stderr, Prefect's way (``12:00:00.000 | INFO    | Flow run
    'name' - message``), only while the application has configured no handler of its own: once
    the root logger (``logging.basicConfig()``) or the ``actorflow`` logger has a handler, this
    one is silent, so nothing is ever printed twice."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_RunFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        package = logging.getLogger("actorflow")
        if any(handler is not self for handler in package.handlers):
            return
        super().emit(record)


class _RunFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s.%(msecs)03d | %(levelname)-7s | %(where)s%(message)s", "%H:%M:%S"
        )

    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "run_label", None)
        record.where = f"{label} - " if label else f"{record.name} - "
        return super().format(record)


_console_lock = threading.Lock()
_console: ConsoleFallback | None = None
#: Set once the console is set up (by the first run): a truth test per run until then.
console_ready = False


def ensure_console() -> None:
    """Attach the console fallback to the ``actorflow`` logger (once; at the first run that
    logs, never at import). ``ACTORFLOW_LOGGING_LEVEL`` sets the logger's level when the
    application has not (``INFO`` by default)."""
    global _console, console_ready
    if _console is not None:
        return
    with _console_lock:
        if _console is not None:
            return
        package = logging.getLogger("actorflow")
        if package.level == logging.NOTSET:
            package.setLevel(os.environ.get("ACTORFLOW_LOGGING_LEVEL", "INFO").upper())
        _console = ConsoleFallback()
        package.addHandler(_console)
        console_ready = True


def get_run_logger() -> RunLoggerAdapter:
    """A logger bound to the current task or flow run.

    Raises :class:`MissingContextError` outside of a run.
    """
    run = current_run.get()
    if run is None:
        raise MissingContextError("There is no active flow or task run context.")
    ensure_console()
    return logger_for(run)


# -- print redirection --------------------------------------------------------------------------
#: Where ``print`` goes inside a run with ``log_prints``: that run's logger.
print_target: ContextVar[RunLoggerAdapter | None] = ContextVar(
    "actorflow_print_target", default=None
)
#: Whether ``print`` has been replaced (by the first run with ``log_prints``).
print_redirected = False


def _log_prints(run: Any) -> bool:
    """A run's ``log_prints``: a task's own setting wins; unset, it follows its flow's."""
    setting = run.spec.log_prints if not run.is_flow else run.log_prints
    if setting is None and not run.is_flow and run.flow is not None:
        setting = run.flow.log_prints
    return bool(setting)


def print_scope_needed(run: Any) -> bool:
    """Whether ``run``'s body needs :func:`enter_print_scope` (checked once per run)."""
    return _log_prints(run) or (print_redirected and print_target.get() is not None)


def enter_print_scope(run: Any) -> Token[RunLoggerAdapter | None] | None:
    """Point ``print`` at ``run``'s logger if it logs prints, or away from an outer run's if
    it does not; a token for :func:`leave_print_scope`, or ``None`` if nothing changed."""
    if _log_prints(run):
        install_print_redirect()
        return print_target.set(logger_for(run))
    if print_redirected and print_target.get() is not None:
        return print_target.set(None)
    return None


def leave_print_scope(token: Token[RunLoggerAdapter | None] | None) -> None:
    if token is not None:
        print_target.reset(token)


def install_print_redirect() -> None:
    """Route ``print`` to the run logger inside runs with ``log_prints`` (installed once, by the
    first such run).

    The replacement checks a context variable, so concurrent runs in other threads, and code
    outside runs, keep printing to their streams.
    """
    global print_redirected
    ensure_console()
    if print_redirected:
        return
    import builtins
    import sys

    original = builtins.print

    def print(
        *args: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        target = print_target.get()
        if target is None or file not in (None, sys.stdout):
            original(*args, sep=sep, end=end, file=file, flush=flush)
            return
        target.info((sep if sep is not None else " ").join(str(a) for a in args))

    print.__wrapped__ = original  # type: ignore[attr-defined]  # the usual marker of a wrapper
    builtins.print = print
    print_redirected = True


# -- run lifecycle lines, as Prefect prints them -------------------------------------------------
_flow_log = logging.getLogger("actorflow.flow_runs")
_task_log = logging.getLogger("actorflow.task_runs")


def lifecycle_logging(run: Any) -> bool:
    """Whether ``run``'s lifecycle lines are logged (one cached level check)."""
    return (_flow_log if run.is_flow else _task_log).isEnabledFor(logging.INFO)


def log_beginning(run: Any) -> None:
    if _flow_log.isEnabledFor(logging.INFO):
        logger_for(run).info(f"Beginning flow run {run.name!r} for flow {run.spec.name!r}")


def log_failure(run: Any, exc: BaseException, retry: tuple[int, int, float] | None) -> None:
    """An attempt's exception: with the retry that follows it, if any."""
    log = logger_for(run)
    if run.is_flow:
        log.error(f"Encountered exception during execution: {exc!r}", exc_info=exc)
    elif retry is not None:
        number, retries, seconds = retry
        when = f"{seconds:g} second(s) from now" if seconds > 0 else "immediately"
        log.info(
            f"Task run failed with exception: {exc!r} - Retry {number}/{retries} will start {when}"
        )
    else:
        log.error(f"Task run failed with exception: {exc!r}", exc_info=exc)


def log_finished(run: Any) -> None:
    state = run.state
    failed = state.is_failed() or state.is_crashed()
    level = logging.ERROR if failed and (not run.is_flow or state.is_crashed()) else logging.INFO
    logger_for(run).log(level, f"Finished in state {state}")


# -- Prefect's run contexts ----------------------------------------------------------------------
class TaskRunContext:
    """What ``TaskRunContext.get()`` gives inside a task run (``None`` elsewhere): the run, its
    task and its parameters. One per run: ``get_run_context() is TaskRunContext.get()``."""

    __slots__ = ("parameters", "task", "task_run")

    def __init__(self, run: Any) -> None:
        self.task_run = run
        self.task = run.spec.owner
        self.parameters: dict[str, Any] = run.parameters

    @classmethod
    def get(cls) -> TaskRunContext | None:
        run: Any = current_run.get()
        if run is None or run.is_flow or not hasattr(run, "run_context"):
            return None
        return run.run_context()  # type: ignore[no-any-return]  # a TaskRun's context

    def __repr__(self) -> str:
        return f"TaskRunContext(task_run={self.task_run.name!r})"


class FlowRunContext:
    """What ``FlowRunContext.get()`` gives inside a flow run, and inside its task runs (``None``
    elsewhere): the run, its flow and its parameters."""

    __slots__ = ("flow", "flow_run", "parameters")

    def __init__(self, run: Any) -> None:
        self.flow_run = run
        self.flow = run.spec.owner
        self.parameters: dict[str, Any] = run.parameters

    @classmethod
    def get(cls) -> FlowRunContext | None:
        run: Any = current_flow_run()  # a FlowRun, which makes its context
        if run is None:
            return None
        context: FlowRunContext = run.run_context()
        return context

    def __repr__(self) -> str:
        return f"FlowRunContext(flow_run={self.flow_run.name!r})"


def get_run_context() -> TaskRunContext | FlowRunContext:
    """The context of the innermost run: a task run's, else a flow run's. Raises
    :class:`MissingContextError` outside any run."""
    context: TaskRunContext | FlowRunContext | None = TaskRunContext.get() or FlowRunContext.get()
    if context is None:
        raise MissingContextError(
            "No run context available. You are not in a flow or task run context."
        )
    return context
