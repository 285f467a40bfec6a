"""The journal: every transition of every run, and their log lines, in one SQLite database.

The hot path is :meth:`Journal.sink`: at a run's first transition it appends the run to a
deque and returns (the run keeps its own history). A writer thread, owned by the journal, wakes
every ``interval`` seconds, reads what each run seen and not yet ended added to its history since
the last batch, builds the rows (a run's name, task key, tags, parameters summary, tracebacks)
and writes them in one transaction. :meth:`Journal.flush` does the same on demand, and
:meth:`Journal.close` at the end.

The database is in WAL mode, so other processes read it while it is written; a process killed
mid-flow leaves its runs without an end (``RunRecord.end_ns is None``), which readers show as
unfinished. ``":memory:"`` keeps the journal in this process only (tests, embedding).
"""

from __future__ import annotations

import logging
import os
import platform
import sqlite3
import threading
import time
import traceback
from collections import deque
from itertools import compress
from operator import attrgetter, itemgetter, ne
from typing import TYPE_CHECKING, Any, final

import orjson

from .._core import Actor, StateType
from .._core._context import flow_of
from .._core._states import NOT_READY
from ._progress import Progress, progress_from_environment
from ._queries import JournalReader

if TYPE_CHECKING:
    from ._records import JournalStatistics

__all__ = ["Journal"]

#: The layout of the tables below, kept in the database's ``user_version``.
SCHEMA_VERSION = 1

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
    history TEXT NOT NULL,
    -- the transitions of earlier deliveries of the run, by other processes (a background run
    -- whose worker died is run again elsewhere), in the same form
    earlier TEXT NOT NULL DEFAULT '[]'
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
INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]')
ON CONFLICT (id) DO UPDATE SET
    name = excluded.name, upstream = excluded.upstream, run_count = excluded.run_count,
    state_type = excluded.state_type, state_name = excluded.state_name,
    start_ns = coalesce(runs.start_ns, excluded.start_ns), end_ns = excluded.end_ns,
    history = excluded.history,
    -- another process runs it now (a redelivery): what the last one recorded moves to earlier
    -- (both are compact JSON lists, joined as text)
    earlier = CASE
        WHEN runs.process = excluded.process THEN runs.earlier
        WHEN runs.earlier = '[]' THEN runs.history
        ELSE substr(runs.earlier, 1, length(runs.earlier) - 1) || ',' || substr(runs.history, 2)
    END,
    process = excluded.process
-- A run ended by one process is not rewritten by another: a background run is journaled by
-- each worker it was delivered to, and the first end recorded stands (a worker paused past
-- its lease, whose later outcome the broker refuses, is refused here too).
WHERE runs.end_ns IS NULL OR runs.process = excluded.process
"""


_WITH_TRACEBACK = frozenset({StateType.FAILED, StateType.CRASHED})
_HISTORY = attrgetter("_history")
_SEEN = itemgetter(2)


@final
class _Shape:
    """What the writer needs of a sequence of state kinds (most runs go through the same few:
    Pending, Running, Completed), made once per sequence."""

    __slots__ = ("ends", "kinds", "names", "nones", "running", "types", "with_traceback")

    def __init__(self, kinds: tuple[Any, ...]) -> None:
        #: The kinds themselves: kept alive, so that their ids (the key) stay theirs.
        self.kinds = kinds
        self.types = tuple(k.type.value for k in kinds)
        self.names = tuple(k.name for k in kinds)
        self.nones = (None,) * len(kinds)
        #: The position of the first Running state, or -1.
        self.running = next((i for i, k in enumerate(kinds) if k.type is StateType.RUNNING), -1)
        #: The positions of the states that keep a traceback (Failed, Crashed).
        self.with_traceback = tuple(i for i, k in enumerate(kinds) if k.type in _WITH_TRACEBACK)
        #: Whether the run ends with the last one (NotReady included: the run never runs).
        last = kinds[-1]
        self.ends: bool = last.final or last.name == "NotReady"


_SUMMARY_CHARS = 120

#: Run records (and, apart, log lines) kept for a later batch while writes fail, at most.
MAX_UNWRITTEN = 100_000

logger = logging.getLogger("actorflow")


def _summary(value: Any) -> str:
    """A short text for a parameter's value (the journal keeps a summary, never the value)."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not stop the journal
        text = f"<{type(value).__name__}: repr raised {type(exc).__name__}>"
    return text if len(text) <= _SUMMARY_CHARS else text[: _SUMMARY_CHARS - 3] + "..."


@final
class Journal(JournalReader):
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
        ``max_queued``: past this many queued runs and log lines, a thread making a new run
        writes the queue itself (so memory stays bounded when runs are made faster than written)."""
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if max_queued < 1:
            raise ValueError(f"max_queued must be at least 1, got {max_queued!r}")
        self.max_queued = max_queued
        self.batches = 0
        self._reset_unwritten()
        self.path = str(path)
        self.interval = interval
        self.writer = True
        self.progress = progress_from_environment(progress)
        #: New runs, log records (in 1-tuples) and runs moving on from NotReady (in 2-tuples).
        self._queue: deque[Any] = deque()
        self._append = self._queue.append
        self._sink: Any = None
        self._started: list[bool] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.RLock()
        self._closed = False
        #: The runs seen and not yet ended, and what was read of them (see _read_histories).
        self._live: list[list[Any]] = []
        self._live_runs: list[Any] = []
        #: Texts made once (bounded caches): tags as JSON; by task and parent run, the parts
        #: of a row its runs share.
        self._texts: dict[frozenset[str], str] = {}
        self._places: dict[tuple[int, int], tuple[Any, ...]] = {}
        #: By the ids of a sequence of state kinds, its shape (a bounded cache).
        self._shapes: dict[tuple[int, ...], _Shape] = {}
        self._connect()
        self._begin_process()

    def _reset_unwritten(self) -> None:
        #: Rows a failed write left for the next batch (by run id) and its log lines.
        self._unwritten_rows: dict[str, tuple[Any, ...]] = {}
        self._unwritten_logs: list[tuple[Any, ...]] = []
        self._dropped = 0
        self._write_error: str | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Read the journal at ``path`` (written by this or another process)."""
        if not os.path.isfile(path):
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
        journal._reset_unwritten()
        journal._queue = deque()
        journal._append = journal._queue.append
        journal._sink = None
        journal._started = []
        journal._thread = None
        journal._stop = threading.Event()
        journal._wake = threading.Event()
        journal._lock = threading.RLock()
        journal._closed = False
        journal._live = []
        journal._live_runs = []
        journal._texts = {}
        journal._places = {}
        journal._shapes = {}
        journal._connect()
        return journal

    def _connect(self) -> None:
        memory = self.path == ":memory:"
        folder = os.path.dirname(self.path)
        if not memory and folder:
            os.makedirs(folder, exist_ok=True)
        db = self._open_db(memory)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        if columns and version != SCHEMA_VERSION:
            if version == 0 and "history" in columns:
                # Written before deliveries were kept apart: the one column it lacks is added.
                if "earlier" not in columns:
                    db.execute("ALTER TABLE runs ADD COLUMN earlier TEXT NOT NULL DEFAULT '[]'")
            else:  # another layout: kept, under another name, and a new journal begun
                db.close()
                aside = f"{self.path}.v{version}-{time.time_ns()}"
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(self.path + suffix):
                        os.replace(self.path + suffix, aside + suffix)
                logging.getLogger("actorflow").warning(
                    "the run journal at %r has another layout (version %d, this one writes %d):"
                    " it was moved to %r and a new journal begun",
                    self.path,
                    version,
                    SCHEMA_VERSION,
                    aside,
                )
                db = self._open_db(memory)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db = db

    def _open_db(self, memory: bool) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 10000")
        if not memory:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
        return db

    def _begin_process(self) -> None:
        self.host = platform.node()
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
        """What the core calls with every transition, on the transitioning thread (a closure:
        no attribute lookups). Only a run's first transition is queued: the run keeps its
        history, which the writer reads (every transition since its last batch) until the run
        ends. A run that moves on from NotReady, where the writer stops reading, is queued again.
        """
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
                    append(run)
                    if not started:
                        start()
                elif old is not_ready:  # the writer stopped reading it there
                    append((run, old))

            started: list[bool] = []  # made true (non-empty) by _start, read by the closure
            not_ready = NOT_READY
            self._started = started
            sink = self._sink = sink
        return sink

    def log(self, record: logging.LogRecord) -> None:
        """Record a run's log line (its record carries ``run_id``)."""
        self._append((record,))
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
                logger.exception("the run journal could not write")

    def flush(self) -> None:
        """Write every transition and log line recorded so far (called by the writer thread, and
        on demand): the rows of the runs new since the last batch and of those whose history
        grew since."""
        queue = self._queue
        if not queue and not self._live and not self._unwritten_rows and not self._unwritten_logs:
            return
        with self._lock:
            if self._closed:
                return
            pop = queue.popleft
            live = self._live
            runs = self._live_runs
            logs: list[tuple[Any, ...]] = []
            try:
                while True:
                    item = pop()
                    if item.__class__ is tuple:
                        if len(item) == 1:
                            logs.append(self._log_row(item[0]))
                            continue
                        item = item[0]  # moved on from NotReady: read again, unless still read
                        if any(run is item for run in runs):
                            continue
                    runs.append(item)
                    live.append([item, None, 0, [], None, None])
            except IndexError:
                pass
            rows: dict[str, tuple[Any, ...]] = {}
            if live:
                self._read_histories(rows)
            progress = self.progress
            if self._unwritten_rows or self._unwritten_logs:
                rows = {**self._unwritten_rows, **rows}  # a run's newest row replaces its older
                logs = self._unwritten_logs + logs
            if rows or logs:
                if self._write(list(rows.values()), logs):
                    self.batches += 1
                else:
                    self._keep_unwritten(rows, logs)
            if progress is not None:
                progress.draw()

    def _read_histories(self, rows: dict[str, tuple[Any, ...]]) -> None:
        """Put in ``rows`` the row of each run seen and not yet ended whose history grew since
        it was last read; forget those that ended.

        The runs not yet ended are in ``_live_runs``, their entries in ``_live`` (in the same
        order): ``[run, its row's fixed part (None until first read), how much of its history
        was read, its transitions as rows keep them, its first Running timestamp, its last
        state read as (type, name)]``. The runs that did not move are passed over without a
        Python step each (a flow may have many runs waiting).
        """
        live = self._live
        runs = self._live_runs
        lengths = list(map(len, map(_HISTORY, runs)))
        moved = compress(live, map(ne, lengths, map(_SEEN, live)))
        done = [entry for entry in moved if self._read_run(entry, rows)]
        if done:
            if len(done) == len(live):
                live.clear()
                runs.clear()
            else:
                ended = {id(entry) for entry in done}
                keep = [id(entry) not in ended for entry in live]
                live[:] = compress(live, keep)
                runs[:] = compress(runs, keep)

    def _read_run(self, entry: list[Any], rows: dict[str, tuple[Any, ...]]) -> bool:
        """Read what a run added to its history since ``entry`` was last read, put its row in
        ``rows``; whether it ended (or could not be recorded)."""
        run = entry[0]
        h = run._history
        n = len(h)  # the run's thread may add to it meanwhile: what is there now is read
        seen = entry[2]
        fixed = entry[1]
        if fixed is None:
            try:
                fixed = entry[1] = self._fixed_part(run)
            except Exception:  # an odd run must not cost the batch its records
                logger.exception("the run journal could not record %r", run)
                return True
        kinds = h[seen:n:4]
        key = tuple(map(id, kinds))
        shapes = self._shapes
        shape = shapes.get(key)
        if shape is None:
            if len(shapes) > 1024:
                shapes.clear()
            shape = shapes[key] = _Shape(tuple(kinds))
        stamps = h[seen + 1 : n : 4]
        notes = h[seen + 2 : n : 4]
        progress = self.progress
        if not seen and shape.ends and not shape.with_traceback and progress is None:
            # Most runs: read once, at their end, with no traceback to format.
            # (zip's strict check costs more than it checks: its sequences are one length)
            history = list(zip(shape.types, shape.names, stamps, notes, shape.nones))  # noqa: B905
            upstream = getattr(run, "upstream", ())
            rows[fixed[0]] = (
                fixed[0],
                fixed[1],
                run.name,
                *fixed[2:8],
                orjson.dumps([u.hex for u in upstream]).decode() if upstream else "[]",
                run.run_count,
                shape.types[-1],
                shape.names[-1],
                h[1],
                stamps[shape.running] if shape.running >= 0 else None,
                stamps[-1],
                self.process,
                orjson.dumps(history).decode(),
            )
            return True
        history = entry[3]
        done = len(history)
        history.extend(zip(shape.types, shape.names, stamps, notes, shape.nones))  # noqa: B905
        for i in shape.with_traceback:
            data = h[seen + 4 * i + 3]
            if isinstance(data, BaseException):
                tb = "".join(traceback.format_exception(data))
                history[done + i] = (*history[done + i][:4], tb)
        start = entry[4]
        if start is None and shape.running >= 0:
            start = stamps[shape.running]
        if progress is not None:
            self._show_progress(progress, run, fixed, entry[5], history[done:])
        last = history[-1]
        ended = shape.ends  # (a run that moves on from NotReady is queued again)
        if ended:
            end = last[2]
            upstream = getattr(run, "upstream", ())
            upstream_text = orjson.dumps([u.hex for u in upstream]).decode() if upstream else "[]"
            if progress is not None and fixed[1] == "flow":
                progress.ended(fixed[0])
        else:
            end = None
            entry[2] = n
            entry[4] = start
            entry[5] = last
            upstream_text = "[]"
        rows[fixed[0]] = (
            fixed[0],
            fixed[1],
            run.name,
            *fixed[2:8],
            upstream_text,
            run.run_count,
            last[0],
            last[1],
            h[1],
            start,
            end,
            self.process,
            orjson.dumps(history).decode(),
        )
        return ended

    @staticmethod
    def _show_progress(
        progress: Progress,
        run: Any,
        fixed: tuple[Any, ...],
        old: tuple[Any, ...] | None,
        new: list[tuple[Any, ...]],
    ) -> None:
        name = run.name
        for item in new:
            row = [fixed[0], fixed[1], name, *fixed[2:8], None, None, item[0], item[1]]
            progress.seen(row, None if old is None else old[0], None if old is None else old[1])
            old = item

    def _write(self, rows: list[tuple[Any, ...]], logs: list[tuple[Any, ...]]) -> bool:
        """One batch in one transaction; whether it was written. A database that cannot be
        written (a full disk, a read-only file) is reported once, when writes start failing,
        and once when they work again: the runs themselves never notice."""
        db = self._db
        try:
            db.execute("BEGIN")
            if rows:
                db.executemany(_UPSERT_RUN, rows)
            if logs:
                db.executemany("INSERT INTO logs VALUES (?, ?, ?, ?, ?)", logs)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            # SQLite may have rolled the transaction back itself (it does on SQLITE_FULL):
            # a ROLLBACK then would fail and hide the cause.
            if db.in_transaction:
                db.execute("ROLLBACK")
            error = f"{type(exc).__name__}: {exc}"
            if self._write_error is None:
                logger.error(
                    "the run journal at %r cannot be written (%s): runs go on; their records "
                    "are kept in memory (up to %d runs) and written once it can be",
                    self.path,
                    error,
                    MAX_UNWRITTEN,
                )
            self._write_error = error
            return False
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if self._write_error is not None:
            logger.warning(
                "the run journal at %r is written again (%d run records kept meanwhile%s)",
                self.path,
                len(rows),
                f"; {self._dropped} given up" if self._dropped else "",
            )
            self._write_error = None
        self._unwritten_rows = {}
        self._unwritten_logs = []
        return True

    def _keep_unwritten(
        self, rows: dict[str, tuple[Any, ...]], logs: list[tuple[Any, ...]]
    ) -> None:
        """Keep a failed batch for the next one, the newest ``MAX_UNWRITTEN`` of each kind."""
        excess = len(rows) - MAX_UNWRITTEN
        if excess > 0:
            for key in list(rows)[:excess]:
                del rows[key]
            self._dropped += excess
        if len(logs) > MAX_UNWRITTEN:
            self._dropped += len(logs) - MAX_UNWRITTEN
            logs = logs[-MAX_UNWRITTEN:]
        self._unwritten_rows = rows
        self._unwritten_logs = logs

    def statistics(self) -> JournalStatistics:
        """What is queued and in flight (a frozen record)."""
        from ._records import JournalStatistics

        return JournalStatistics(
            queued=len(self._queue),
            unfinished_runs=len(self._live),
            batches=self.batches,
            writer_running=self._thread is not None and self._thread.is_alive(),
            unwritten=len(self._unwritten_rows) + len(self._unwritten_logs),
            dropped=self._dropped,
            write_error=self._write_error,
        )

    def _fixed_part(self, run: Any) -> tuple[Any, ...]:
        """What a run's row keeps from its first batch on: its id, kind, spec name, task key,
        flow run and parent ids, tags and parameters (as in the table, the name left out)."""
        parent = run.parent
        spec = run.spec
        # The runs of one task under one parent (a map, a loop) share these: made once.
        # (Keyed by the parent's run id, which no other run has, and the spec, kept alive.)
        key = (id(spec), -1 if parent is None else parent._int_id)
        places = self._places
        place = places.get(key)
        if place is None or place[0] is not spec:
            flow = flow_of(parent)
            if len(places) > 4096:
                places.clear()
            place = places[key] = (
                spec,
                "flow" if run.is_flow else "task",
                spec.name,
                None if run.is_flow else run.task_key(),
                None if flow is None else f"{flow._int_id:032x}",
                None if parent is None else f"{parent._int_id:032x}",
            )
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
        return (
            run._int_id.to_bytes(16, "big").hex(),  # f"{id:032x}", made for less
            *place[1:],
            tags_text,
            orjson.dumps(parameters).decode(),
        )

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
            self._closed = True
            try:
                if self.writer and self._write_error is None:
                    self._db.execute(
                        "UPDATE processes SET ended_ns = ? WHERE id = ?",
                        (time.time_ns(), self.process),
                    )
            except sqlite3.Error as exc:  # a full disk at the very end: the runs are written
                logger.error("the run journal at %r could not record its end: %s", self.path, exc)
            finally:
                self._db.close()
            if self._unwritten_rows or self._unwritten_logs:
                logger.error(
                    "the run journal at %r closed with %d run records unwritten (%s)",
                    self.path,
                    len(self._unwritten_rows) + len(self._unwritten_logs),
                    self._write_error,
                )

    def after_fork(self) -> None:
        """In a forked child: forget the parent's thread, events and connection; record this
        process's runs under its own process id."""
        self._lock = threading.RLock()
        self._queue.clear()
        self._live.clear()
        self._live_runs.clear()
        self._started.clear()
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        if self.path == ":memory:":
            self._closed = True  # the parent's memory is not this process's journal
            return
        self._connect()
        self._begin_process()

    def __repr__(self) -> str:
        return f"Journal({self.path!r})"
