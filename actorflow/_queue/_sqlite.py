"""The default broker: one SQLite file (WAL), shared by the processes of one machine.

Every change is one short ``BEGIN IMMEDIATE`` transaction over a batch (enqueue, claim, renew,
finish), so writers from several processes take turns and readers never wait. With
``synchronous=FULL`` (the default) a committed batch survives a power cut; ``NORMAL`` (set
``ACTORFLOW_QUEUE_SQLITE_SYNC=NORMAL``) survives a killed process but may lose the last batches
on power loss, and skips the fsync per commit. Waiting (for a run to claim, for a run to end)
polls ``PRAGMA data_version``, which changes only when another connection commits: a read of
shared memory, no query.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, final

from .._core import ConfigurationError
from ._broker import (
    Delivery,
    NewRun,
    QueueSettings,
    Record,
    dead_letter_data,
    dead_letter_message,
)

__all__ = ["SQLiteBroker"]

QUEUED, LEASED, FINAL = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ns TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    task_key TEXT NOT NULL,
    name TEXT NOT NULL,
    payload BLOB NOT NULL,
    reply TEXT NOT NULL,
    status INTEGER NOT NULL,
    owner TEXT,
    lease_until REAL,
    token INTEGER NOT NULL DEFAULT 0,
    s_type TEXT NOT NULL,
    s_name TEXT NOT NULL,
    s_ts INTEGER NOT NULL,
    s_message TEXT,
    data BLOB
);
CREATE INDEX IF NOT EXISTS runs_ready ON runs (ns, task_key, status, seq);
CREATE INDEX IF NOT EXISTS runs_leased ON runs (ns, status, lease_until);
CREATE TABLE IF NOT EXISTS finished (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    reply TEXT NOT NULL,
    id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS finished_reply ON finished (reply, seq);
"""

#: How often a blocked claim or wait looks for another process's commit.
POLL = 0.0005


@final
class SQLiteBroker:
    """Runs and records in one SQLite file (see the module's docstring)."""

    def __init__(self, config: QueueSettings) -> None:
        self.settings = config
        path = config.url.removeprefix("sqlite://")  # sqlite:///abs/path gives /abs/path
        if not path or path == "/":
            raise ConfigurationError(f"ACTORFLOW_BROKER_URL {config.url!r} names no file")
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        sync = (os.environ.get("ACTORFLOW_QUEUE_SQLITE_SYNC") or "FULL").upper()
        if sync not in ("FULL", "NORMAL", "EXTRA", "OFF"):
            raise ConfigurationError(
                f"ACTORFLOW_QUEUE_SQLITE_SYNC must be FULL or NORMAL, got {sync!r}"
            )
        self._sync = sync
        self._local = threading.local()
        self._lock = threading.Lock()
        self._last_finished: dict[str, int] = {}
        self._db().executescript(_SCHEMA)

    # -- connections ----------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._sync}")
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _changed(self, db: sqlite3.Connection) -> int:
        row = db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def _wait_change(self, db: sqlite3.Connection, version: int, deadline: float) -> bool:
        """Poll until another connection commits or ``deadline``; whether one did."""
        while time.monotonic() < deadline:
            time.sleep(POLL)
            if self._changed(db) != version:
                return True
        return False

    # -- producers ------------------------------------------------------------------------------
    def enqueue(self, runs: Sequence[NewRun]) -> None:
        ns = self.settings.namespace
        rows = [
            (ns, r.id, r.task_key, r.name, r.payload, r.reply, QUEUED, r.scheduled_ns) for r in runs
        ]
        with self._write() as db:
            db.executemany(
                "INSERT INTO runs (ns, id, task_key, name, payload, reply, status, s_type, "
                "s_name, s_ts) VALUES (?, ?, ?, ?, ?, ?, ?, 'SCHEDULED', 'Scheduled', ?)",
                rows,
            )

    # -- workers --------------------------------------------------------------------------------
    def claim(
        self, worker: str, task_keys: Sequence[str], count: int, block: float
    ) -> tuple[list[Delivery], list[Delivery]]:
        db = self._db()
        deadline = time.monotonic() + block
        while True:
            version = self._changed(db)
            claimed, dead = self._claim_once(db, worker, task_keys, count)
            if claimed or dead or block <= 0:
                return claimed, dead
            if not self._wait_change(db, version, deadline):
                return self._claim_once(db, worker, task_keys, count)

    def _claim_once(
        self, db: sqlite3.Connection, worker: str, task_keys: Sequence[str], count: int
    ) -> tuple[list[Delivery], list[Delivery]]:
        ns = self.settings.namespace
        marks = ",".join("?" * len(task_keys))
        now = time.time()
        columns = "seq, id, task_key, name, payload, token, reply"
        # A look first, outside any transaction: an idle poll takes no write lock.
        ready = db.execute(
            f"SELECT 1 FROM runs WHERE ns = ? AND task_key IN ({marks}) AND "
            f"(status = {QUEUED} OR (status = {LEASED} AND lease_until < ?)) LIMIT 1",
            (ns, *task_keys, now),
        ).fetchone()
        if ready is None:
            return [], []
        with self._write() as db:
            rows = db.execute(
                f"SELECT {columns} FROM runs WHERE ns = ? AND status = {LEASED} AND "
                f"lease_until < ? AND task_key IN ({marks}) LIMIT ?",
                (ns, now, *task_keys, count),
            ).fetchall()
            if len(rows) < count:
                rows += db.execute(
                    f"SELECT {columns} FROM runs WHERE ns = ? AND task_key IN ({marks}) AND "
                    f"status = {QUEUED} ORDER BY seq LIMIT ?",
                    (ns, *task_keys, count - len(rows)),
                ).fetchall()
            limit = self.settings.max_deliveries
            claimed: list[Delivery] = []
            dead: list[Delivery] = []
            for seq, run_id, key, name, payload, token, _reply in rows:
                delivery = Delivery(run_id, key, name, payload, token + 1, str(seq))
                (dead if token + 1 > limit else claimed).append(delivery)
            if claimed:
                until = now + self.settings.lease
                db.executemany(
                    f"UPDATE runs SET status = {LEASED}, owner = ?, lease_until = ?, "
                    "token = token + 1, s_type = 'PENDING', s_name = 'Pending', s_ts = ? "
                    "WHERE seq = ?",
                    [(worker, until, time.time_ns(), int(d.handle)) for d in claimed],
                )
            if dead:
                message = dead_letter_message(limit)
                data = dead_letter_data(limit)
                for d in dead:
                    reply = db.execute(
                        f"UPDATE runs SET status = {FINAL}, owner = NULL, token = token + 1, "
                        "s_type = 'CRASHED', s_name = 'Crashed', s_ts = ?, s_message = ?, "
                        "data = ?, payload = x'' WHERE seq = ? RETURNING reply",
                        (time.time_ns(), message, data, int(d.handle)),
                    ).fetchone()[0]
                    db.execute("INSERT INTO finished (reply, id) VALUES (?, ?)", (reply, d.id))
        return claimed, dead

    def renew(self, worker: str, deliveries: Sequence[Delivery]) -> list[Delivery]:
        until = time.time() + self.settings.lease
        lost = []
        with self._write() as db:
            for d in deliveries:
                cursor = db.execute(
                    f"UPDATE runs SET lease_until = ? WHERE id = ? AND token = ? AND "
                    f"status = {LEASED}",
                    (until, d.id, d.token),
                )
                if cursor.rowcount != 1:
                    lost.append(d)
        return lost

    def update(self, updates: Sequence[tuple[Delivery, Record]]) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET s_type = ?, s_name = ?, s_ts = ?, s_message = ? "
                f"WHERE id = ? AND token = ? AND status = {LEASED}",
                [(r.type, r.name, r.timestamp_ns, r.message, d.id, d.token) for d, r in updates],
            )

    def finish(self, outcomes: Sequence[tuple[Delivery, Record]]) -> list[bool]:
        won = []
        with self._write() as db:
            for d, r in outcomes:
                row = db.execute(
                    f"UPDATE runs SET status = {FINAL}, owner = NULL, s_type = ?, s_name = ?, "
                    "s_ts = ?, s_message = ?, data = ?, payload = x'' "
                    f"WHERE id = ? AND token = ? AND status = {LEASED} RETURNING reply",
                    (r.type, r.name, r.timestamp_ns, r.message, r.data, d.id, d.token),
                ).fetchone()
                won.append(row is not None)
                if row is not None:
                    db.execute("INSERT INTO finished (reply, id) VALUES (?, ?)", (row[0], d.id))
        return won

    def release(self, deliveries: Sequence[Delivery]) -> None:
        with self._write() as db:
            db.executemany(
                f"UPDATE runs SET status = {QUEUED}, owner = NULL, lease_until = NULL, "
                "s_type = 'SCHEDULED', s_name = 'Scheduled', s_ts = ?, s_message = NULL "
                f"WHERE id = ? AND token = ? AND status = {LEASED}",
                [(time.time_ns(), d.id, d.token) for d in deliveries],
            )

    # -- readers --------------------------------------------------------------------------------
    def read(self, ids: Sequence[str]) -> list[Record | None]:
        db = self._db()
        found: dict[str, Record] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for run_id, *row in db.execute(
                "SELECT id, s_type, s_name, s_ts, s_message, data, status FROM runs "
                f"WHERE id IN ({marks})",
                chunk,
            ):
                found[run_id] = _record(row)
        return [found.get(run_id) for run_id in ids]

    def finished_since(self, reply: str, block: float) -> list[str]:
        db = self._db()
        deadline = time.monotonic() + block
        last = self._last_finished.get(reply, 0)
        while True:
            version = self._changed(db)
            rows = db.execute(
                "SELECT seq, id FROM finished WHERE reply = ? AND seq > ? ORDER BY seq",
                (reply, last),
            ).fetchall()
            if rows:
                self._last_finished[reply] = rows[-1][0]
                return [row[1] for row in rows]
            if block <= 0 or not self._wait_change(db, version, deadline):
                return []

    def queued(self) -> dict[str, int]:
        rows = self._db().execute(
            f"SELECT task_key, count(*) FROM runs WHERE ns = ? AND status != {FINAL} "
            "GROUP BY task_key",
            (self.settings.namespace,),
        )
        return {key: count for key, count in rows}

    def close(self) -> None:
        # Only this thread's connection is closed here: closing one that another thread is
        # using is undefined behaviour in sqlite3. The others close when their threads end.
        db = getattr(self._local, "db", None)
        if db is not None:
            self._local.db = None
            with contextlib.suppress(sqlite3.Error):
                db.close()


def _record(row: Sequence[Any]) -> Record:
    s_type, s_name, s_ts, s_message, data, status = row
    return Record(s_type, s_name, s_ts, s_message, data, status == FINAL)
