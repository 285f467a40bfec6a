"""Where a transaction's record lives (:class:`ResultStore`) and the locks of ``SERIALIZABLE``
transactions (:class:`MemoryLockManager`).

Records are the cache's records (see ``actorflow/_cache/_records.py``), under the same paths: a
transaction keyed by a task's cache key reads and writes the record the cache reads. A store
with a lock manager supports ``SERIALIZABLE`` isolation: the lock manager excludes holders in
this process, and the storage's per-key lock (a POSIX lock on local storage, the one the cache's
compute-once uses) excludes other processes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, final

import anyio
import attrs

from .._cache._paths import check_path
from .._cache._records import CorruptRecord, decode_record, encode_record
from .._cache._serializers import Serializer, resolve_serializer
from .._cache._shared import shared_for
from .._cache._storage import ResultStorage, resolve_storage
from .._core import SerializationError, blocking_region, current_clock, runtime
from ._atomic import opened
from ._modes import IsolationLevel

__all__ = ["MemoryLockManager", "ResultRecord", "ResultStore"]

logger = logging.getLogger("actorflow.transactions")
_local = threading.local()


def _held_here() -> set[str]:
    """Keys this thread's transactions hold through a store."""
    held: set[str] | None = getattr(_local, "held", None)
    if held is None:
        held = _local.held = set()
    return held


@final
@attrs.frozen
class ResultRecord:
    """A record read from a store: the value and when it was made and expires."""

    key: str
    result: Any
    created: float
    expires: float | None


@final
class _LockTable:
    """The locks of this process: a slot of the runtime, so a forked child (whose parent's
    holders do not exist in it) starts with none."""

    __slots__ = ("cond", "held")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        #: key -> (holder, expires at on the monotonic clock, or None)
        self.held: dict[str, tuple[str, float | None]] = {}


def _table() -> _LockTable:
    return runtime.slot("transactions.locks", _LockTable)


@final
class MemoryLockManager:
    """Locks held by holders within this process (one manager per process, as in Prefect)."""

    _instance: MemoryLockManager | None = None
    _made = threading.Lock()

    def __new__(cls) -> MemoryLockManager:
        with cls._made:
            if cls._instance is None:
                cls._instance = super().__new__(cls)
            return cls._instance

    @property
    def _cond(self) -> threading.Condition:
        return _table().cond

    @property
    def _held(self) -> dict[str, tuple[str, float | None]]:
        return _table().held

    def __repr__(self) -> str:
        return "MemoryLockManager()"

    def _free(self, key: str, now: float) -> bool:
        entry = self._held.get(key)
        if entry is None:
            return True
        if entry[1] is not None and now >= entry[1]:
            del self._held[key]  # held past its hold_timeout
            return True
        return False

    def _take(self, key: str, holder: str, hold_timeout: float | None) -> bool:
        now = time.monotonic()
        entry = self._held.get(key)
        if entry is not None and entry[0] == holder:
            return True
        if not self._free(key, now):
            return False
        self._held[key] = (holder, None if hold_timeout is None else now + hold_timeout)
        return True

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take ``key`` for ``holder``, waiting up to ``acquire_timeout`` seconds (``None``:
        forever); ``False`` if it could not. The lock lapses after ``hold_timeout`` seconds."""
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        with self._cond:
            while not self._take(key, holder, hold_timeout):
                remaining = 0.25 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with blocking_region():
                    self._cond.wait(min(remaining, 0.25))
            return True

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        delay = 0.002
        while True:
            with self._cond:
                if self._take(key, holder, hold_timeout):
                    return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def release_lock(self, key: str, holder: str) -> None:
        with self._cond:
            entry = self._held.get(key)
            if entry is None or entry[0] != holder:
                raise ValueError(f"No lock held by {holder} for transaction with key {key}")
            del self._held[key]
            self._cond.notify_all()

    def is_locked(self, key: str) -> bool:
        with self._cond:
            return not self._free(key, time.monotonic())

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with self._cond:
            entry = self._held.get(key)
            return (
                entry is not None and entry[0] == holder and not self._free(key, time.monotonic())
            )

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        """Wait until ``key`` is free (without taking it); ``False`` on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._free(key, time.monotonic()):
                remaining = 0.25 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return False
                with blocking_region():
                    self._cond.wait(min(remaining, 0.25))
            return True


@final
class ResultStore:
    """Reads and writes a transaction's record, and locks its key under ``SERIALIZABLE``.

    ``result_storage`` is a path, a URL or a storage (the default storage when ``None``);
    ``serializer`` is any ``result_serializer`` value; ``lock_manager`` (for instance
    :class:`MemoryLockManager`) is needed for ``SERIALIZABLE`` isolation.
    """

    def __init__(
        self,
        result_storage: Any = None,
        lock_manager: Any = None,
        serializer: Any = None,
        cache_result_in_memory: bool = True,
        metadata_storage: Any = None,
    ) -> None:
        self.result_storage = result_storage
        self.lock_manager = lock_manager
        self.serializer: Serializer = resolve_serializer(serializer)
        self.cache_result_in_memory = cache_result_in_memory
        #: Accepted as in Prefect; records keep their metadata with the payload.
        self.metadata_storage = metadata_storage
        self._storage: ResultStorage | None = None
        # (key, holder) -> the storage lock handle held for it
        self._handles: dict[tuple[str, str], Any] = {}
        self._handles_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResultStore({self.storage!r}, lock_manager={self.lock_manager!r})"

    @property
    def storage(self) -> ResultStorage:
        storage = self._storage
        if storage is None:
            storage = self._storage = resolve_storage(self.result_storage)
            opened(storage)
        return storage

    # -- records --------------------------------------------------------------------------------
    def read(self, key: str, holder: str | None = None) -> ResultRecord | None:
        """The record under ``key``, or ``None`` if there is none (or it expired). With a lock
        manager, waits first while another holder has the key (as in Prefect), so a reader
        sees what a ``SERIALIZABLE`` writer commits."""
        self._wait_unless_held(key, holder)
        storage = self.storage
        got = storage.read(check_path(key))
        if got is None:
            return None
        try:
            record = decode_record(got[0], key)
        except CorruptRecord as exc:
            logger.warning("record %r in %s is corrupt (%s)", key, storage.location, exc)
            return None
        if record.expired(current_clock().time()):
            return None
        value = self.serializer.loads(record.format, record.payload)
        return ResultRecord(key, value, record.created, record.expires)

    def exists(self, key: str) -> bool:
        got = self.storage.read(check_path(key))
        if got is None:
            return False
        try:
            record = decode_record(got[0], key)
        except CorruptRecord:
            return False
        return not record.expired(current_clock().time())

    def encode(self, key: str, obj: Any, expiration: float | None = None) -> bytes:
        """The bytes of a record of ``obj`` under ``key``."""
        try:
            fmt, payload = self.serializer.dumps(obj)
        except Exception as exc:
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        now = current_clock().time()
        return encode_record(check_path(key), fmt, payload, now, expiration)

    def write(self, key: str, obj: Any, expiration: float | None = None) -> None:
        """Write ``obj`` as the record under ``key``, replacing any."""
        storage = self.storage
        storage.replace(key, self.encode(key, obj, expiration), None)
        shared_for(storage.location).forget(key)

    # -- isolation ------------------------------------------------------------------------------
    def supports_isolation_level(self, level: Any) -> bool:
        if level is IsolationLevel.READ_COMMITTED:
            return True
        return level is IsolationLevel.SERIALIZABLE and self.lock_manager is not None

    def _need_manager(self) -> Any:
        manager = self.lock_manager
        if manager is None:
            raise ValueError("No lock manager provided for this result store.")
        return manager

    def _wait_unless_held(self, key: str, holder: str | None) -> None:
        manager = self.lock_manager
        if manager is None or not manager.is_locked(key):
            return
        if holder is not None and manager.is_lock_holder(key, holder):
            return
        if holder is None and key in _held_here():
            return  # held by a transaction of this thread: waiting would never end
        manager.wait_for_lock(key)

    def acquire_lock(self, key: str, holder: str, timeout: float | None = None) -> bool:
        """Take ``key``'s lock for ``holder``: in this process through the lock manager, across
        processes through the storage's lock. Waits up to ``timeout`` seconds."""
        manager = self._need_manager()
        deadline = None if timeout is None else time.monotonic() + timeout
        if not manager.acquire_lock(key, holder, acquire_timeout=timeout):
            return False
        delays = _backoff()
        while not self._take_storage_lock(key, holder):
            if deadline is not None and time.monotonic() >= deadline:
                manager.release_lock(key, holder)
                return False
            with blocking_region():
                time.sleep(next(delays))
        return True

    def _take_storage_lock(self, key: str, holder: str) -> bool:
        """Try the storage's lock on ``key`` once (other processes hold it too); kept for
        ``holder`` when taken."""
        handle = self.storage.try_lock(check_path(key))
        if handle is None:
            return False
        with self._handles_lock:
            self._handles[key, holder] = handle
        _held_here().add(key)
        return True

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        timeout: float | None = None,  # noqa: ASYNC109  # Prefect's signature, not a scope
    ) -> bool:
        manager = self._need_manager()
        deadline = None if timeout is None else time.monotonic() + timeout
        taken = getattr(manager, "aacquire_lock", None)
        if taken is not None:
            held = await taken(key, holder, acquire_timeout=timeout)
        else:
            held = manager.acquire_lock(key, holder, acquire_timeout=0)
        if not held:
            return False
        delays = _backoff()
        while not self._take_storage_lock(key, holder):
            if deadline is not None and time.monotonic() >= deadline:
                manager.release_lock(key, holder)
                return False
            await anyio.sleep(next(delays))
        return True

    def release_lock(self, key: str, holder: str) -> None:
        _held_here().discard(key)
        with self._handles_lock:
            handle = self._handles.pop((key, holder), None)
        if handle is not None:
            self.storage.unlock(handle)
        self._need_manager().release_lock(key, holder)

    def is_locked(self, key: str) -> bool:
        return bool(self._need_manager().is_locked(key))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        return bool(self._need_manager().is_lock_holder(key, holder))


def _backoff() -> Iterator[float]:
    """Seconds between tries of a storage lock another process holds: 2 ms, doubling to 0.1 s."""
    delay = 0.002
    while True:
        yield delay
        delay = min(delay * 2, 0.1)
