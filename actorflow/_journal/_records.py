"""The journal's values: a run as recorded, one transition of it, one log line."""

from __future__ import annotations

from typing import Any

import attrs


def uuid_text(hex_id: str) -> str:
    """A 32-digit hex run id in the usual UUID form (as ``str(run.id)`` gives it)."""
    h = hex_id
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def hex_of(run_id: Any) -> str:
    """The journal's key of a run id given as a UUID, its text, or the 32 hex digits."""
    text = str(run_id).replace("-", "").lower()
    if len(text) != 32 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{run_id!r} is not a run id (a UUID, as `actorflow runs` lists them)")
    return text


@attrs.frozen
class TransitionRecord:
    """One state a run entered: its type and name, when, and why."""

    state_type: str
    state_name: str
    timestamp_ns: int
    message: str | None = None
    #: The formatted traceback of the exception a Failed or Crashed state carries.
    traceback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class LogRecord:
    """A log line of a run (``get_run_logger()``, ``log_prints``, its lifecycle lines)."""

    run_id: str
    timestamp_ns: int
    level: str
    logger: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class RunRecord:
    """A task or flow run as the journal holds it.

    ``end_ns`` is ``None`` while the run is unfinished, or when its process ended before it
    did (see ``process_alive``). ``transitions`` and ``logs`` are filled in by
    :meth:`Journal.run`, left empty by listings.
    """

    id: str
    kind: str  # "flow" or "task"
    name: str
    #: The task's or flow's name (a run's name says which run; this says which definition).
    spec_name: str
    task_key: str | None
    flow_run_id: str | None
    parent_id: str | None
    tags: tuple[str, ...]
    parameters: dict[str, str]
    upstream: tuple[str, ...]
    run_count: int
    state_type: str
    state_name: str
    created_ns: int
    start_ns: int | None
    end_ns: int | None
    host: str
    pid: int
    #: Whether the process that ran it was still writing to the journal when it was read.
    process_alive: bool = True
    transitions: tuple[TransitionRecord, ...] = ()
    logs: tuple[LogRecord, ...] = ()

    @property
    def finished(self) -> bool:
        return self.end_ns is not None

    @property
    def duration_s(self) -> float | None:
        """Seconds from its first Running state to its end (``None`` if either is missing)."""
        if self.start_ns is None or self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; the keys are stable (``actorflow runs --json`` prints it)."""
        out = attrs.asdict(self, recurse=True)
        out["tags"] = list(self.tags)
        out["upstream"] = list(self.upstream)
        out["finished"] = self.finished
        out["duration_s"] = self.duration_s
        return out


@attrs.frozen
class FlowRunSummary:
    """A flow run with the counts of its task runs by final state (``actorflow runs``)."""

    run: RunRecord
    #: state name -> number of task runs now in it (Completed, Failed, Running, ...).
    task_runs: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        out = self.run.to_dict()
        out["task_runs"] = dict(self.task_runs)
        return out


@attrs.frozen
class JournalStatistics:
    #: New runs and log lines waiting for the writer.
    queued: int
    #: Runs seen and not yet ended (their rows are kept until they end).
    unfinished_runs: int
    #: Batches written so far.
    batches: int
    writer_running: bool
    #: Records of runs (and log lines) a failed write left to the next batch: kept in memory
    #: while the database cannot be written (a full disk), up to ``MAX_UNWRITTEN`` each.
    unwritten: int = 0
    #: Records given up because more than ``MAX_UNWRITTEN`` were waiting.
    dropped: int = 0
    #: Why the last write failed, while writes fail (``None`` once one succeeds again).
    write_error: str | None = None
