"""The Redis broker: Streams with consumer groups, for workers on several machines.

Keys share the hash tag ``{namespace}`` (one slot): a stream ``af:{ns}:q:<task_key>`` per task
with the consumer group ``workers``; a hash ``af:{ns}:r:<run id>`` per run (state, outcome,
``dl``: deliveries so far, which is the fencing token; made at the first claim: a run with no
record is Scheduled); a list ``af:{ns}:done:<reply>`` per
producer, told the ids of its runs as they end. Every fenced step is one Lua script (atomic on
the server); batches of them go in one pipeline, one round trip.

A lease is the stream entry's idle time: the heartbeat resets it (``XCLAIM ... JUSTID``, which
does not count as a delivery), and entries idle longer than the lease are taken over with
``XAUTOCLAIM``. redis-py's synchronous client is used from the client's and the worker's own
threads, so callers on asyncio and trio alike never wait on it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
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

__all__ = ["RedisBroker"]

GROUP = "workers"
#: How long a final record is kept (seconds).
RESULT_TTL = 7 * 24 * 3600

# KEYS: record, stream.  ARGV: group, entry id, token, consumer.
_RENEW = """
if redis.call('HGET', KEYS[1], 'dl') ~= ARGV[3] or redis.call('HGET', KEYS[1], 'f') == '1' then
  return 0
end
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[4], 0, ARGV[2], 'JUSTID')
return 1
"""

# KEYS: record.  ARGV: token, type, name, ts, message.
_UPDATE = """
if redis.call('HGET', KEYS[1], 'dl') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'f') == '1' then
  return 0
end
redis.call('HSET', KEYS[1], 't', ARGV[2], 'n', ARGV[3], 'ts', ARGV[4], 'm', ARGV[5])
return 1
"""

# KEYS: record, stream.  ARGV: group, entry id, token, type, name, ts, message, data, prefix,
# ttl, run id.  The first final write wins; a stale token is refused (and does not ack).
_FINISH = """
if redis.call('HGET', KEYS[1], 'f') == '1' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'dl') ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], 't', ARGV[4], 'n', ARGV[5], 'ts', ARGV[6], 'm', ARGV[7],
  'd', ARGV[8], 'f', '1')
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[10])
local reply = redis.call('HGET', KEYS[1], 'rp')
if reply then
  local done = ARGV[9] .. 'done:' .. reply
  redis.call('RPUSH', done, ARGV[11])
  redis.call('EXPIRE', done, ARGV[10])
end
return 1
"""

# KEYS: record, stream.  ARGV: group, entry id, ts, reply.  A new delivery: the new token, or 0
# for a run already final (its entry is dropped).
_CLAIM = """
if redis.call('HGET', KEYS[1], 'f') == '1' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
  return 0
end
redis.call('HSET', KEYS[1], 't', 'PENDING', 'n', 'Pending', 'ts', ARGV[3], 'rp', ARGV[4])
return redis.call('HINCRBY', KEYS[1], 'dl', 1)
"""

# KEYS: record, stream.  ARGV: group, entry id, token, consumer, idle ms.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'dl') ~= ARGV[3] or redis.call('HGET', KEYS[1], 'f') == '1' then
  return 0
end
redis.call('HSET', KEYS[1], 't', 'SCHEDULED', 'n', 'Scheduled')
redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[4], 0, ARGV[2], 'IDLE', ARGV[5], 'JUSTID')
return 1
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "ACTORFLOW_BROKER_URL names a Redis broker, but the redis package is not installed: "
            'pip install "actorflow[redis]"'
        ) from None
    return redis


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@final
class RedisBroker:
    """Runs and records in Redis (see the module's docstring)."""

    def __init__(self, config: QueueSettings) -> None:
        redis = _import_redis()
        self.settings = config
        self._redis = redis.Redis.from_url(config.url, socket_timeout=None)
        self._ResponseError = redis.ResponseError
        self.prefix = f"af:{{{config.namespace}}}:"
        self._lease_ms = int(config.lease * 1000)
        self._NoScriptError = redis.exceptions.NoScriptError
        self._scripts = {
            "renew": _RENEW,
            "update": _UPDATE,
            "finish": _FINISH,
            "claim": _CLAIM,
            "release": _RELEASE,
        }
        self._sha: dict[str, str] = {}
        self._groups: set[str] = set()
        self._last_autoclaim = 0.0
        self._lock = threading.Lock()

    def _load_scripts(self) -> None:
        for name, text in self._scripts.items():
            self._sha[name] = _s(self._redis.script_load(text))

    def _scripted(self, calls: Sequence[tuple[str, Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Run ``(script, keys, args)`` calls in one pipeline, one round trip (EVALSHA: the
        scripts are loaded once, and again if the server forgot them)."""
        if not self._sha:
            self._load_scripts()
        for attempt in (1, 2):
            pipe = self._redis.pipeline(transaction=False)
            sha = self._sha
            for name, keys, args in calls:
                pipe.execute_command("EVALSHA", sha[name], len(keys), *keys, *args)
            try:
                return list(pipe.execute())
            except self._NoScriptError:
                if attempt == 2:
                    raise
                self._load_scripts()
        raise AssertionError("unreachable")

    def _record_key(self, run_id: str) -> str:
        return f"{self.prefix}r:{run_id}"

    def _stream(self, task_key: str) -> str:
        return f"{self.prefix}q:{task_key}"

    def _ensure_groups(self, task_keys: Sequence[str]) -> None:
        for key in task_keys:
            if key in self._groups:
                continue
            try:
                self._redis.xgroup_create(self._stream(key), GROUP, id="0", mkstream=True)
            except self._ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            self._redis.sadd(f"{self.prefix}keys", key)
            with self._lock:
                self._groups.add(key)

    # -- producers ------------------------------------------------------------------------------
    def enqueue(self, runs: Sequence[NewRun]) -> None:
        # One XADD per run: its record is made when a worker first claims it (until then a
        # run is Scheduled, as a missing record reads).
        pipe = self._redis.pipeline(transaction=False)
        keys = set()
        for r in runs:
            pipe.xadd(
                self._stream(r.task_key),
                {"id": r.id, "n": r.name, "p": r.payload, "rp": r.reply, "ts": r.scheduled_ns},
            )
            keys.add(r.task_key)
        pipe.sadd(f"{self.prefix}keys", *keys)
        pipe.execute()

    # -- workers --------------------------------------------------------------------------------
    def claim(
        self, worker: str, task_keys: Sequence[str], count: int, block: float
    ) -> tuple[list[Delivery], list[Delivery]]:
        self._ensure_groups(task_keys)
        entries: list[tuple[str, str, dict[bytes, bytes]]] = []
        now = time.monotonic()
        if now - self._last_autoclaim > min(1.0, self.settings.lease / 4):
            self._last_autoclaim = now
            for key in task_keys:
                stream = self._stream(key)
                _, found, _ = self._redis.xautoclaim(
                    stream, GROUP, worker, self._lease_ms, "0-0", count=count - len(entries)
                )
                entries += [(key, _s(eid), fields) for eid, fields in found if fields]
                if len(entries) >= count:
                    break
        if not entries:
            streams = {self._stream(k): ">" for k in task_keys}
            got = self._redis.xreadgroup(
                GROUP,
                worker,
                streams,
                count=count,
                block=None if block <= 0 else max(1, int(block * 1000)),
            )
            prefix_len = len(self.prefix) + 2
            for stream, found in got or ():
                key = _s(stream)[prefix_len:]
                entries += [(key, _s(eid), fields) for eid, fields in found if fields]
        if not entries:
            return [], []
        ts = time.time_ns()
        tokens = self._scripted(
            [
                (
                    "claim",
                    (self._record_key(_s(f[b"id"])), self._stream(k)),
                    (GROUP, eid, ts, f.get(b"rp", b"")),
                )
                for k, eid, f in entries
            ]
        )
        claimed: list[Delivery] = []
        dead: list[Delivery] = []
        limit = self.settings.max_deliveries
        for (key, eid, fields), token in zip(entries, tokens, strict=True):
            if not token:
                continue
            d = Delivery(
                _s(fields[b"id"]), key, _s(fields.get(b"n", b"")), fields[b"p"], int(token), eid
            )
            (dead if d.token > limit else claimed).append(d)
        if dead:
            message = dead_letter_message(limit)
            data = dead_letter_data(limit)
            record = Record("CRASHED", "Crashed", time.time_ns(), message, data, True)
            self.finish([(d, record) for d in dead])
        return claimed, dead

    def renew(self, worker: str, deliveries: Sequence[Delivery]) -> list[Delivery]:
        held = self._scripted(
            [
                (
                    "renew",
                    (self._record_key(d.id), self._stream(d.task_key)),
                    (GROUP, d.handle, d.token, worker),
                )
                for d in deliveries
            ]
        )
        return [d for d, ok in zip(deliveries, held, strict=True) if not ok]

    def update(self, updates: Sequence[tuple[Delivery, Record]]) -> None:
        self._scripted(
            [
                (
                    "update",
                    (self._record_key(d.id),),
                    (d.token, r.type, r.name, r.timestamp_ns, r.message or ""),
                )
                for d, r in updates
            ]
        )

    def finish(self, outcomes: Sequence[tuple[Delivery, Record]]) -> list[bool]:
        prefix = self.prefix
        won = self._scripted(
            [
                (
                    "finish",
                    (self._record_key(d.id), self._stream(d.task_key)),
                    (
                        GROUP,
                        d.handle,
                        d.token,
                        r.type,
                        r.name,
                        r.timestamp_ns,
                        r.message or "",
                        r.data or b"",
                        prefix,
                        RESULT_TTL,
                        d.id,
                    ),
                )
                for d, r in outcomes
            ]
        )
        return [bool(w) for w in won]

    def release(self, deliveries: Sequence[Delivery]) -> None:
        self._scripted(
            [
                (
                    "release",
                    (self._record_key(d.id), self._stream(d.task_key)),
                    (GROUP, d.handle, d.token, "released", self._lease_ms + 1),
                )
                for d in deliveries
            ]
        )
        self._last_autoclaim = 0.0

    # -- readers --------------------------------------------------------------------------------
    def read(self, ids: Sequence[str]) -> list[Record | None]:
        pipe = self._redis.pipeline(transaction=False)
        for run_id in ids:
            pipe.hmget(self._record_key(run_id), "t", "n", "ts", "m", "d", "f")
        records: list[Record | None] = []
        for fields in pipe.execute():
            t, n, ts, m, d, f = fields
            if t is None:
                records.append(None)
                continue
            records.append(Record(_s(t), _s(n), int(ts or 0), _s(m) or None, d or None, f == b"1"))
        return records

    def finished_since(self, reply: str, block: float) -> list[str]:
        key = f"{self.prefix}done:{reply}"
        # One round trip: the blocking pop, then (right after it, on the server) the rest.
        pipe = self._redis.pipeline(transaction=False)
        if block > 0:
            pipe.blpop([key], timeout=block)
        pipe.lpop(key, 10_000)
        got = pipe.execute()
        first = got[0] if block > 0 else None
        ids = [_s(first[1])] if first else []
        return ids + [_s(i) for i in got[-1] or ()]

    def queued(self) -> dict[str, int]:
        keys = [_s(k) for k in self._redis.smembers(f"{self.prefix}keys")]
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.xlen(self._stream(key))
        return {k: n for k, n in zip(keys, pipe.execute(), strict=True) if n}

    def close(self) -> None:
        self._redis.close()
        self._redis.connection_pool.disconnect()
