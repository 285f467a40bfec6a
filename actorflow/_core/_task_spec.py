"""A task's spec: loaded with the first task (see ``_specs`` for what specs are), so that a
script of flows alone does not make its class."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from ._specs import RunCache, RunSpec

__all__ = ["TaskSpec"]


@attrs.frozen(kw_only=True)
class TaskSpec(RunSpec):
    """A task's options, as its runs read them."""

    #: The task's stable key (made on first use: it reads the function's source).
    task_key: Callable[[], str]
    cache: RunCache | None = None
    #: An async task whose body may block on a run (``future.result()``...): its body runs so
    #: that such a wait suspends it rather than the event loop (see ``_suspend``).
    suspends: bool = False
    #: Whether every run takes a transaction of its own, open or not: the task has commit or
    #: rollback hooks, or its cache policy an isolation level.
    transactional: bool = False
