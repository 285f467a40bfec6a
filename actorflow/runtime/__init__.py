"""What the running code can read of its runs, as in ``prefect.runtime``: ``flow_run`` and
``task_run`` (``from actorflow import runtime; runtime.flow_run.name``). Outside a run, each
attribute has Prefect's empty value (``None``, ``{}``, ``0``, ``[]``)."""

from . import flow_run, task_run

__all__ = ("flow_run", "task_run")
