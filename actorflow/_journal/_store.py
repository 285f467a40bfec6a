"""The journal: every transition of every run, and their log lines, in one SQLite database.

The hot path is :meth:`Journal.sink`: it appends the raw transition to a deque and returns. A
writer thread, owned by the journal, wakes every ``interval`` seconds, drains the deque, builds
the rows (a run's name, task key, tags, parameters summary, tracebacks) and writes them in one
transaction. :meth:`Journal.flush` does the same on demand, and :meth:`Journal.close` at the end.

The database is in WAL mode, so other processes read it while it is written; a process killed
mid-flow leaves its runs without an end (``RunRecord.end_ns is None``), which readers show as
unfinished. ``":memory:"`` keeps the journal in this process only (tests, embedding).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, final

import attrs
import orjson

from .._core import Actor, StateType
from ._progress import Progress, progress_from_environment
from ._records import FlowRunSummary, LogRecord, RunRecord, TransitionRecord, hex_of, uuid_text

__all__ = ["Journal", "JournalStatistics"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec_name TEXT NOT NULL,
    task_key TEXT,
    flow_run_id TEXT,
    parent_id TEXT,
    tags TEXT NOT NULL,
    parameters TEXT NOT NULL,
    upstream TEXT NOT NULL,
    run_count INTEGER NOT NULL,
    state_type TEXT NOT NULL,
    state_name TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    start_ns INTEGER,
    end_ns INTEGER,
    process TEXT NOT NULL,
    -- every transition, oldest first: a JSON list of [type, name, ts_ns, message, traceback]
    history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow_run_id);
CREATE INDEX IF NOT EXISTS flow_runs_by_time ON runs (created_ns) WHERE kind = 'flow';
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    level TEXT NOT NULL,
    logger TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_ns INTEGER NOT NULL,
    ended_ns INTEGER
);
"""

_UPSERT_RUN = """
INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, upstream = excluded.upstream, run_count = excluded.run_count,
    state_type = excluded.state_type, state_name = excluded.state_name,
    start_ns = coalesce(runs.start_ns, excluded.start_ns), end_ns = excluded.end_ns,
    history = excluded.history
"""

_RUN_COLUMNS = (
    "r.id, r.kind, r.name, r.spec_name, r.task_key, r.flow_run_id, r.parent_id, r.tags, "
    "r.parameters, r.upstream, r.run_count, r.state_type, r.state_name, r.created_ns, "
    "r.start_ns, r.end_ns, p.host, p.pid, p.ended_ns, r.history"
)
_RUN_FROM = "runs r JOIN processes p ON p.id = r.process"

# Indexes into a run's row (the order of the table's columns).
_NAME, _UPSTREAM, _RUN_COUNT, _TYPE, _STATE, _START, _END, _HISTORY = 2, 9, 10, 11, 12, 14, 15, 17

_WITH_TRACEBACK = frozenset({StateType.FAILED, StateType.CRASHED})
#: id(StateKind) -> (type text, name, whether it is Running, whether it keeps a traceback,
#: whether the run ends there): looked up once per transition, filled on first sight.
_KINDS: dict[int, tuple[str, str, bool, bool, bool]] = {}


def _kind_info(kind: Any) -> tuple[str, str, bool, bool, bool]:
    info = _KINDS[id(kind)] = (
        kind.type.value,
        kind.name,
        kind.type is StateType.RUNNING,
        kind.type in _WITH_TRACEBACK,
        kind.final or kind.name == "NotReady",  # NotReady: the run never runs
    )
    return info


_SUMMARY_CHARS = 120


def _summary(value: Any) -> str:
    """A short text for a parameter's value (the journal keeps a summary, never the value)."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not stop the journal
        text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


@attrs.frozen
class JournalStatistics:
    #: Events waiting for the writer.
    queued: int
    #: Runs seen and not yet ended (their rows are kept until they end).
    unfinished_runs: int
    #: Batches written so far.
    batches: int
    writer_running: bool


@final
class Journal:
    """A run journal backed by SQLite at ``path`` (``":memory:"`` for one in this process).

    A journal that records (``writer=True``, what :func:`actorflow.journal.enable` makes) owns a
    writer thread, started by its first event. ``Journal.open(path)`` reads one that another
    process writes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = ":memory:",
        *,
        interval: float = 0.2,
        progress: bool | Progress | None = None,
        max_queued: int = 30_000,
    ) -> None:
        """``interval``: seconds between the writer's batches; ``progress``: draw a progress
        line for long flow runs on a terminal (``None``: unless ``ACTORFLOW_PROGRESS=off``);
        ``max_queued``: past this many queued events, a thread making a new run writes the
        queue itself (so memory stays bounded when runs are made faster than written)."""
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued!r}")
        self.max_queued = max_queued
        self.batches = 0
        self.path = str(path)
        self.interval = interval
        self.writer = True
        self.progress = progress_from_environment(progress)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._append = self._queue.append
        self._sink: Any = None
        self._started: list[bool] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self._closed = False
        #: Rows of the runs seen and not yet finished, by their int id.
        self._live: dict[int, list[Any]] = {}
        #: Texts made once: tags as JSON, ids of parent runs as hex (bounded caches).
        self._texts: dict[frozenset[str], str] = {}
        self._hexes: dict[int, str] = {}
        self._connect()
        self._begin_process()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Read the journal at ``path`` (written by this or another process)."""
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"no run journal at {os.fspath(path)!r}: runs are journaled to "
                "$ACTORFLOW_HOME/journal.db (~/.actorflow/journal.db) unless "
                "ACTORFLOW_JOURNAL says otherwise"
            )
        journal = cls.__new__(cls)
        journal.path = os.fspath(path)
        journal.interval = 0.2
        journal.writer = False
        journal.progress = None
        journal.max_queued = 30_000
        journal.batches = 0
        journal._queue = deque()
        journal._append = journal._queue.append
        journal._sink = None
        journal._started = []
        journal._thread = None
        journal._stop = threading.Event()
        journal._wake = threading.Event()
        journal._lock = threading.RLock()
        journal._closed = False
        journal._live = {}
        journal._texts = {}
        journal._hexes = {}
        journal._connect()
        return journal

    def _connect(self) -> None:
        memory = self.path == ":memory:"
        if not memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 10000")
        if not memory:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(_SCHEMA)
        self._db = db

    def _begin_process(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        started = time.time_ns()
        self.process = f"{self.host}:{self.pid}:{started}"
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO processes VALUES (?, ?, ?, ?, NULL)",
                (self.process, self.host, self.pid, started),
            )

    # -- the hot path ---------------------------------------------------------------------------
    @property
    def sink(self) -> Any:
        """What the core calls with every transition, on the transitioning thread: it queues
        ``(run, kind, timestamp, message, data)`` and returns (a closure: no attribute lookups)."""
        sink = self._sink
        if sink is None:
            append = self._append
            start = self._start
            queue = self._queue
            limit = self.max_queued
            flush = self.flush

            def sink(
                run: Actor, old: Any, kind: Any, ts: int, message: str | None, data: Any
            ) -> None:
                if old is None:  # a new run: the only transition that pays for these checks
                    if run.is_flow:
                        run.name  # noqa: B018  # a flow names itself on its own thread
                    if len(queue) > limit:
                        flush()  # runs are made faster than written: help, and so slow down
                append((run, kind, ts, message, data))
                if not started:
                    start()

            started: list[bool] = []  # made true (non-empty) by _start, read by the closure
            self._started = started
            sink = self._sink = sink
        return sink

    def log(self, record: logging.LogRecord) -> None:
        """Record a run's log line (its record carries ``run_id``)."""
        self._append((None, record))
        if not self._started:
            self._start()

    # -- the writer -----------------------------------------------------------------------------
    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started.append(True)  # from now on the sink does not call here
            if self._closed or not self.writer:
                return
            thread = threading.Thread(target=self._write_loop, name="actorflow-journal")
            thread.daemon = True  # stopped and flushed by close(), which runs at exit
            self._thread = thread
            thread.start()

    def _write_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                logging.getLogger("actorflow").exception("the run journal could not write")

    def flush(self) -> None:
        """Write every event recorded so far (called by the writer thread, and on demand)."""
        queue = self._queue
        if not queue:
            return
        with self._lock:
            if self._closed:
                return
            pop = queue.popleft
            logs: list[tuple[Any, ...]] = []
            touched: dict[int, list[Any]] = {}
            live = self._live
            progress = self.progress
            kinds = _KINDS
            dumps = orjson.dumps
            try:
                while True:
                    item = pop()
                    run = item[0]
                    if run is None:
                        logs.append(self._log_row(item[1]))
                        continue
                    _, kind, ts, message, data = item
                    key = run._int_id
                    row = live.get(key)
                    if row is None:
                        try:
                            row = live[key] = self._run_row(run, ts)
                        except Exception:  # an odd run must not cost the batch its records
                            logging.getLogger("actorflow").exception(
                                "the run journal could not record %r", run
                            )
                            continue
                        old_type = old_name = None
                    else:
                        old_type, old_name = row[_TYPE], row[_STATE]
                    touched[key] = row
                    info = kinds.get(id(kind)) or _kind_info(kind)
                    type_text, name, running, with_tb, ends = info
                    tb = None
                    if with_tb and isinstance(data, BaseException):
                        tb = "".join(traceback.format_exception(data))
                    row[_HISTORY].append((type_text, name, ts, message, tb))
                    row[_TYPE] = type_text
                    row[_STATE] = name
                    if running:
                        row[_RUN_COUNT] = run.run_count
                        if row[_START] is None:
                            row[_START] = ts
                    if ends:
                        row[_END] = ts
                        row[_NAME] = run.name
                        row[_RUN_COUNT] = run.run_count
                        upstream = getattr(run, "upstream", ())
                        if upstream:
                            row[_UPSTREAM] = dumps([u.hex for u in upstream]).decode()
                        del live[key]
                    if progress is not None:
                        progress.seen(row, old_type, old_name)
                        if ends and row[1] == "flow":
                            progress.ended(row[0])
            except IndexError:
                pass
            rows = [(*row[:_HISTORY], dumps(row[_HISTORY]).decode()) for row in touched.values()]
            db = self._db
            db.execute("BEGIN")
            try:
                if rows:
                    db.executemany(_UPSERT_RUN, rows)
                if logs:
                    db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?)", logs)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self.batches += 1
            if progress is not None:
                progress.draw()

    def statistics(self) -> JournalStatistics:
        """What is queued and in flight (a frozen record)."""
        return JournalStatistics(
            queued=len(self._queue),
            unfinished_runs=len(self._live),
            batches=self.batches,
            writer_running=self._thread is not None and self._thread.is_alive(),
        )

    def _run_row(self, run: Any, ts: int) -> list[Any]:
        parent = run.parent
        flow = parent
        while flow is not None and not flow.is_flow:
            flow = flow.parent
        is_flow = run.is_flow
        try:
            parameters = {k: repr(v) for k, v in run.parameters.items()}
        except Exception:  # a failing bind or __repr__ is the run's business, not the journal's
            try:
                parameters = {k: _summary(v) for k, v in run.parameters.items()}
            except Exception:
                parameters = {}
        for k, text in parameters.items():
            if len(text) > _SUMMARY_CHARS:
                parameters[k] = text[: _SUMMARY_CHARS - 3] + "..."
        tags = run.tags
        texts = self._texts
        tags_text = texts.get(tags)
        if tags_text is None:
            if len(texts) > 4096:
                texts.clear()
            tags_text = texts[tags] = orjson.dumps(sorted(tags)).decode()
        return [
            f"{run._int_id:032x}",
            "flow" if is_flow else "task",
            run.name,
            run.spec.name,
            None if is_flow else run.task_key(),
            None if flow is None else self._hex_of(flow),
            None if parent is None else self._hex_of(parent),
            tags_text,
            orjson.dumps(parameters).decode(),
            "[]",
            run.run_count,
            "PENDING",
            "Pending",
            ts,
            None,
            None,
            self.process,
            [],
        ]

    def _hex_of(self, run: Any) -> str:
        """The hex id of a parent (flow runs have many children: their ids are formatted once)."""
        key = run._int_id
        hexes = self._hexes
        text = hexes.get(key)
        if text is None:
            if len(hexes) > 4096:
                hexes.clear()
            text = hexes[key] = f"{key:032x}"
        return text

    @staticmethod
    def _log_row(record: logging.LogRecord) -> tuple[Any, ...]:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
        run_id = str(getattr(record, "run_id", "")).replace("-", "")
        return (run_id, int(record.created * 1e9), record.levelname, record.name, message)

    def close(self) -> None:
        """Stop the writer thread, write what is left and mark this process's runs as ended
        with it (runs still unfinished then stay unfinished)."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self.writer:
            self.flush()
        with self._lock:
            if self._closed:
                return
            if self.writer:
                self._db.execute(
                    "UPDATE processes SET ended_ns = ? WHERE id = ?", (time.time_ns(), self.process)
                )
            self._closed = True
            self._db.close()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's thread, events and connection; record this
        process's runs under its own process id."""
        self._lock = threading.RLock()
        self._queue.clear()
        self._live.clear()
        self._started.clear()
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        if self.path == ":memory:":
            self._closed = True  # the parent's memory is not this process's journal
            return
        self._connect()
        self._begin_process()

    # -- queries --------------------------------------------------------------------------------
    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.writer:
            self.flush()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the run journal at {self.path!r} is closed")
            return self._db.execute(sql, args).fetchall()

    def _record(self, row: tuple[Any, ...], history: bool = False) -> RunRecord:
        (id_, kind, name, spec_name, task_key, flow_id, parent_id, tags, parameters,
         upstream, run_count, state_type, state_name, created, start, end, host, pid,
         ended, history_text) = row  # fmt: skip
        alive = end is not None or ended is None
        if alive and end is None and host == socket.gethostname():
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
            transitions=tuple(TransitionRecord(*t) for t in orjson.loads(history_text))
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
        return attrs_evolve(self._record(rows[0], history=True), logs=logs)

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

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"


def attrs_evolve(record: RunRecord, **changes: Any) -> RunRecord:
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
