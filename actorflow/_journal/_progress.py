"""A live progress line for flow runs with many task runs, drawn on a terminal.

The journal's writer thread feeds it every transition it writes (no work on the runs' threads)
and asks it to draw after each batch. A flow run gets a line once it has run for ``after``
seconds with at least ``min_tasks`` (10) task runs; it is drawn only when the stream is a
terminal.
``ACTORFLOW_PROGRESS=off`` (or ``journal.enable(progress=False)``) switches it off.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any, final

__all__ = ["Progress", "progress_from_environment"]

_DONE = "COMPLETED"
_FAILED = frozenset({"FAILED", "CRASHED", "CANCELLED"})
_WIDTH = 24


def _category(state_type: str | None, state_name: str | None) -> str:
    if state_type == _DONE:
        return "done"
    if state_type in _FAILED or state_name == "NotReady":
        return "failed"
    if state_type == "RUNNING":
        return "running"
    return "waiting"


@final
class _Flow:
    __slots__ = ("by_task", "counts", "drawn", "name", "started")

    def __init__(self, name: str, started: float) -> None:
        self.name = name
        self.started = started
        self.counts = _counts()
        #: The same counts per task (by the task's name), in the order the tasks first ran.
        self.by_task: dict[str, dict[str, int]] = {}
        self.drawn = False


def _counts() -> dict[str, int]:
    return {"done": 0, "failed": 0, "running": 0, "waiting": 0}


@final
class Progress:
    """Counts task runs by state per top-level flow run, in all and per task, and draws one
    line for the newest."""

    def __init__(
        self, stream: IO[str] | None = None, *, after: float = 1.0, min_tasks: int = 10
    ) -> None:
        self.stream = stream
        self.after = after
        self.min_tasks = min_tasks
        self._flows: dict[str, _Flow] = {}

    def _out(self) -> IO[str] | None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            return stream if stream.isatty() else None
        except (AttributeError, ValueError):  # a closed or unusual stream: not a terminal
            return None

    def seen(self, row: list[Any], old_type: str | None, old_name: str | None) -> None:
        """``row`` (a run's journal row, already updated) moved from ``old_type``/``old_name``."""
        kind, flow_id, parent_id = row[1], row[5], row[6]
        if kind == "flow":
            if old_type is None:
                if parent_id is None:
                    self._flows[row[0]] = _Flow(row[2], time.monotonic())
                elif flow_id is not None:
                    self.adopt(row[0], flow_id)
            return
        # A task run counts for the outermost flow run it is under that we know of.
        flow = self._flows.get(flow_id) if flow_id is not None else None
        if flow is None:
            return
        task_counts = flow.by_task.get(row[3])
        if task_counts is None:
            task_counts = flow.by_task[row[3]] = _counts()
        new = _category(row[11], row[12])
        for counts in (flow.counts, task_counts):
            if old_type is not None:
                counts[_category(old_type, old_name)] -= 1
            counts[new] += 1

    def adopt(self, run_id: str, flow_id: str) -> None:
        """A subflow's task runs count for the top-level flow run ``flow_id``."""
        flow = self._flows.get(flow_id)
        if flow is not None:
            self._flows[run_id] = flow

    def ended(self, run_id: str) -> None:
        flow = self._flows.pop(run_id, None)
        if flow is None:
            return
        for key in [k for k, v in self._flows.items() if v is flow]:
            del self._flows[key]
        if flow.drawn:
            self._draw(flow, final=True)

    def draw(self) -> None:
        """Redraw the line of the newest top-level flow run that qualifies."""
        now = time.monotonic()
        for flow in reversed(list(dict.fromkeys(self._flows.values()))):
            total = sum(flow.counts.values())
            if total >= self.min_tasks and now - flow.started >= self.after:
                self._draw(flow, final=False)
                return

    def _draw(self, flow: _Flow, final: bool) -> None:
        out = self._out()
        if out is None:
            return
        flow.drawn = True
        c = flow.counts
        total = max(sum(c.values()), 1)
        finished = c["done"] + c["failed"]
        filled = _WIDTH * finished // total
        bar = "#" * filled + "-" * (_WIDTH - filled)
        line = (
            f"Flow run {flow.name!r} [{bar}] {finished}/{total} "
            f"done {c['done']} · failed {c['failed']} · running {c['running']}"
        )
        # Then each task: finished/total, and its failed and running runs when there are any.
        for name, t in flow.by_task.items():
            part = f" | {name} {t['done'] + t['failed']}/{sum(t.values())}"
            if t["failed"]:
                part += f" {t['failed']} failed"
            if t["running"]:
                part += f" {t['running']} running"
            line += part
        import shutil  # here: shutil loads its archive modules, not worth it for a journal

        width = shutil.get_terminal_size((120, 24)).columns - 1
        if len(line) > width:  # one line, never wrapped: a wrapped line cannot be redrawn
            line = line[: max(width - 1, 0)] + "…"
        try:
            out.write(f"\r\x1b[2K{line}" + ("\n" if final else "\r"))
            out.flush()
        except (OSError, ValueError):  # the terminal went away: nothing to draw on
            self.stream = None


def progress_from_environment(progress: bool | Progress | None) -> Progress | None:
    """The progress display a journal uses: ``progress`` when given, else one unless
    ``ACTORFLOW_PROGRESS`` is ``off``."""
    if isinstance(progress, Progress):
        return progress
    if progress is None:
        progress = os.environ.get("ACTORFLOW_PROGRESS", "on").strip().lower() not in (
            "off",
            "0",
            "false",
            "no",
        )
    return Progress() if progress else None
