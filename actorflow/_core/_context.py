"""Run context: which run the current code belongs to, carried in context variables.

Per-run state lives in contextvars so that it follows the code into threads (work items run in a
copy of the submitter's context) and into child tasks, and never leaks between concurrent runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._exceptions import MissingContextError

if TYPE_CHECKING:
    from ._flow_run import FlowRun
    from ._task_run import TaskRun

#: The innermost run (a TaskRun or a FlowRun) the running code belongs to.
current_run: ContextVar[TaskRun | FlowRun | None] = ContextVar("actorflow_run", default=None)
#: Tags added by ``with tags(...)`` blocks, applied to runs created inside them.
current_tags: ContextVar[frozenset[str]] = ContextVar("actorflow_tags", default=frozenset())


def current_flow_run() -> FlowRun | None:
    """The flow run that owns the current code, looking through task runs to their flow."""
    run: Any = current_run.get()
    while run is not None and not run.is_flow:
        run = run.parent
    return run  # type: ignore[no-any-return]


@contextlib.contextmanager
def tags(*names: str) -> Iterator[frozenset[str]]:
    """Add tags to every task and flow run created inside the block."""
    new = current_tags.get() | frozenset(names)
    token = current_tags.set(new)
    try:
        yield new
    finally:
        current_tags.reset(token)


class RunLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that prefixes messages with the run's name and records its id."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return f"{extra.get('run_name', '?')} | {msg}", kwargs


def logger_for(run: TaskRun | FlowRun) -> RunLoggerAdapter:
    kind = "flow_runs" if run.is_flow else "task_runs"
    return RunLoggerAdapter(
        logging.getLogger(f"actorflow.{kind}"),
        {"run_name": run.name, "run_id": str(run.id), "run_kind": kind[:-1]},
    )


def ensure_default_logging() -> None:
    """Show run logs on stderr when the application configured no logging at all.

    Applications that configure logging (a handler on the root or ``actorflow`` logger) are left
    alone; a script that did not would otherwise never see ``log_prints`` output.
    """
    package = logging.getLogger("actorflow")
    if package.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03d | %(levelname)-7s | %(message)s", "%H:%M:%S")
    )
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)


def get_run_logger() -> RunLoggerAdapter:
    """A logger bound to the current task or flow run.

    Raises :class:`MissingContextError` outside of a run.
    """
    run = current_run.get()
    if run is None:
        raise MissingContextError(
            "There is no active flow or task run context: get_run_logger() can only be called "
            "from inside a task or flow."
        )
    ensure_default_logging()
    return logger_for(run)


#: Where ``print`` goes inside a run with ``log_prints``: that run's logger.
print_target: ContextVar[RunLoggerAdapter | None] = ContextVar(
    "actorflow_print_target", default=None
)
#: Whether ``print`` has been replaced; read as ``_context.print_redirected`` (it changes once).
print_redirected = False


def install_print_redirect() -> None:
    """Route ``print`` to the run logger inside runs with ``log_prints`` (installed once).

    The replacement checks a context variable, so concurrent runs in other threads, and code
    outside runs, keep printing to their streams.
    """
    global print_redirected
    ensure_default_logging()
    if print_redirected:
        return
    import builtins

    original = builtins.print

    def print(
        *args: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        target = print_target.get()
        if target is None or file not in (None, _stdout()):
            original(*args, sep=sep, end=end, file=file, flush=flush)
            return
        target.info((sep if sep is not None else " ").join(str(a) for a in args))

    print.__wrapped__ = original  # type: ignore[attr-defined]
    builtins.print = print
    print_redirected = True


def _stdout() -> Any:
    import sys

    return sys.stdout
