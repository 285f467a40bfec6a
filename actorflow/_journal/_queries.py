"""Reading the journal: runs by flow run, state, name and time; one run in full; pruning.

:class:`JournalReader` is the part of :class:`~._store.Journal` that reads; it works on the
connection the journal opened, in this process or another.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import orjson

if TYPE_CHECKING:  # imported by the readers that make them: a writing process never loads them
    from ._records import FlowRunSummary, LogRecord, RunRecord

__all__ = ["JournalReader"]

_RUN_COLUMNS = (
    "r.id, r.kind, r.name, r.spec_name, r.task_key, r.flow_run_id, r.parent_id, r.tags, "
    "r.parameters, r.upstream, r.run_count, r.state_type, r.state_name, r.created_ns, "
    "r.start_ns, r.end_ns, p.host, p.pid, p.ended_ns, r.history, r.earlier"
)
_RUN_FROM = "runs r JOIN processes p ON p.id = r.process"


class JournalReader:
    """Queries over a journal's database (set up by :class:`~._store.Journal`)."""

    path: str
    writer: bool
    _db: sqlite3.Connection
    _lock: threading.RLock
    _closed: bool

    def flush(self) -> None:
        """Write what is queued (a journal that records does; a reader has nothing to write)."""

    # -- queries --------------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.writer:
            self.flush()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the run journal at {self.path!r} is closed")
            return self._db.execute(sql, args).fetchall()

    def _record(self, row: tuple[Any, ...], history: bool = False) -> RunRecord:
        from ._records import RunRecord, TransitionRecord, uuid_text

        (id_, kind, name, spec_name, task_key, flow_id, parent_id, tags, parameters,
         upstream, run_count, state_type, state_name, created, start, end, host, pid,
         ended, history_text, earlier_text) = row  # fmt: skip
        alive = end is not None or ended is None
        if alive and end is None and host == platform.node():
            alive = _pid_alive(pid)
        return RunRecord(
            id=uuid_text(id_),
            kind=kind,
            name=name,
            spec_name=spec_name,
            task_key=task_key,
            flow_run_id=None if flow_id is None else uuid_text(flow_id),
            parent_id=None if parent_id is None else uuid_text(parent_id),
            tags=tuple(orjson.loads(tags)),
            parameters=orjson.loads(parameters),
            upstream=tuple(uuid_text(u) for u in orjson.loads(upstream)),
            run_count=run_count,
            state_type=state_type,
            state_name=state_name,
            created_ns=created,
            start_ns=start,
            end_ns=end,
            host=host,
            pid=pid,
            process_alive=alive,
            # Earlier deliveries' transitions first (a background run redelivered elsewhere).
            transitions=tuple(
                TransitionRecord(*t)
                for text in (earlier_text, history_text)
                for t in orjson.loads(text)
            )
            if history
            else (),
        )

    def runs(
        self,
        *,
        flow_run_id: Any = None,
        kind: str | None = None,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        history: bool = False,
    ) -> list[RunRecord]:
        """Runs, oldest first, filtered by the flow run they belong to, ``kind`` ("task" or
        "flow"), ``state`` (state types or names: ``"FAILED"``, ``"Cached"``), ``name`` (the
        task's or flow's name), and creation time (``since`` / ``until``, Unix seconds).
        ``limit`` keeps the newest. ``history`` also loads each run's transitions."""
        from ._records import hex_of

        where: list[str] = []
        args: list[Any] = []
        if flow_run_id is not None:
            where.append("r.flow_run_id = ?")
            args.append(hex_of(flow_run_id))
        if kind is not None:
            if kind not in ("task", "flow"):
                raise ValueError(f"kind must be 'task' or 'flow', got {kind!r}")
            where.append("r.kind = ?")
            args.append(kind)
        if state is not None:
            states = [state] if isinstance(state, str) else list(state)
            marks = ", ".join("?" * len(states))
            where.append(f"(r.state_type IN ({marks}) OR r.state_name IN ({marks}))")
            args.extend([s.upper() for s in states] + states)
        if name is not None:
            where.append("r.spec_name = ?")
            args.append(name)
        if since is not None:
            where.append("r.created_ns >= ?")
            args.append(int(since * 1e9))
        if until is not None:
            where.append("r.created_ns < ?")
            args.append(int(until * 1e9))
        sql = f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.created_ns DESC, r.rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._record(row, history) for row in reversed(self._rows(sql, args))]

    def run(self, run_id: Any) -> RunRecord:
        """One run with its transitions and log lines. Raises ``KeyError`` naming an id that
        is not in the journal."""
        from ._records import LogRecord, hex_of, uuid_text

        key = hex_of(run_id)
        rows = self._rows(f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE r.id = ?", (key,))
        if not rows:
            raise KeyError(f"no run with id {uuid_text(key)} in the journal at {self.path!r}")
        logs = tuple(
            LogRecord(uuid_text(r[0]), *r[1:])
            for r in self._rows(
                "SELECT run_id, ts_ns, level, logger, message FROM logs WHERE run_id = ? "
                "ORDER BY rowid",
                (key,),
            )
        )
        return _evolve(self._record(rows[0], history=True), logs=logs)

    def find(self, fragment: str) -> RunRecord:
        """The run whose id starts or ends with ``fragment`` (a whole id works too). Ids of one
        process share their first half, so the end of an id is what tells its runs apart."""
        text = fragment.replace("-", "").lower()
        if len(text) == 32:
            return self.run(text)
        if not text or any(c not in "0123456789abcdef" for c in text):
            raise ValueError(f"{fragment!r} is not a run id or a part of one (hex digits)")
        rows = self._rows(
            "SELECT id FROM runs WHERE id LIKE ? OR id LIKE ? LIMIT 2", (text + "%", "%" + text)
        )
        if len(rows) != 1:
            what = "no run" if not rows else "more than one run"
            raise KeyError(
                f"{what} with an id starting or ending with {fragment!r} in {self.path!r}"
            )
        return self.run(rows[0][0])

    def logs(self, run_ids: Iterable[Any]) -> list[LogRecord]:
        """The log lines of the given runs, in the order they were written."""
        from ._records import LogRecord, hex_of, uuid_text

        keys = [hex_of(r) for r in run_ids]
        out: list[LogRecord] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            out.extend(
                LogRecord(uuid_text(r[0]), *r[1:])
                for r in self._rows(
                    "SELECT run_id, ts_ns, level, logger, message FROM logs WHERE run_id IN "
                    f"({', '.join('?' * len(chunk))}) ORDER BY rowid",
                    chunk,
                )
            )
        return out

    def flow_runs(
        self, *, limit: int = 20, state: str | Iterable[str] | None = None, name: str | None = None
    ) -> list[FlowRunSummary]:
        """The newest flow runs (oldest first), each with its task runs counted by state."""
        from ._records import FlowRunSummary, hex_of

        runs = self.runs(kind="flow", state=state, name=name, limit=limit)
        if not runs:
            return []
        keys = [hex_of(r.id) for r in runs]
        counts: dict[str, dict[str, int]] = {}
        rows = self._rows(
            "SELECT flow_run_id, state_name, count(*) FROM runs WHERE kind = 'task' AND "
            f"flow_run_id IN ({', '.join('?' * len(keys))}) GROUP BY flow_run_id, state_name",
            keys,
        )
        for flow_id, state_name, n in rows:
            counts.setdefault(flow_id, {})[state_name] = n
        return [FlowRunSummary(r, counts.get(hex_of(r.id), {})) for r in runs]

    def prune(self, *, older_than: float | None = None, keep: int | None = None) -> int:
        """Delete flow runs created more than ``older_than`` seconds ago, or all but the newest
        ``keep``, with their task runs and logs (and task runs outside flows by
        the same rule). Unfinished runs of a live process are kept. Returns how many runs went."""
        if older_than is None and keep is None:
            raise ValueError("prune needs older_than (seconds) or keep (a number of flow runs)")
        if older_than is not None and older_than < 0:
            raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
        if keep is not None and keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep!r}")
        doomed: set[str] = set()
        for top_kind in ("flow", "task"):
            base = (
                f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE r.kind = ? AND r.parent_id IS NULL"
            )
            rows = self._rows(base + " ORDER BY r.created_ns DESC", (top_kind,))
            cutoff = None if older_than is None else time.time_ns() - int(older_than * 1e9)
            for index, row in enumerate(rows):
                record = self._record(row)
                too_many = keep is not None and index >= keep
                too_old = cutoff is not None and record.created_ns < cutoff
                if (too_many or too_old) and (record.finished or not record.process_alive):
                    doomed.add(row[0])
        if not doomed:
            return 0
        # Whatever belongs to a doomed run (its task runs, subflows and theirs) goes with it.
        frontier = list(doomed)
        while frontier:
            chunk, frontier = frontier[:500], frontier[500:]
            marks = ", ".join("?" * len(chunk))
            for (child,) in self._rows(
                f"SELECT id FROM runs WHERE flow_run_id IN ({marks}) OR parent_id IN ({marks})",
                chunk + chunk,
            ):
                if child not in doomed:
                    doomed.add(child)
                    frontier.append(child)
        ids = list(doomed)
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    db.execute(f"DELETE FROM logs WHERE run_id IN ({marks})", chunk)
                    db.execute(f"DELETE FROM runs WHERE id IN ({marks})", chunk)
                db.execute(
                    "DELETE FROM processes WHERE ended_ns IS NOT NULL AND id NOT IN "
                    "(SELECT DISTINCT process FROM runs)"
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return len(ids)


def _evolve(record: RunRecord, **changes: Any) -> RunRecord:
    return attrs.evolve(record, **changes)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
