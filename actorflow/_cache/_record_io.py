"""Record I/O: reading a run's record from memory or storage, and writing it after the body.

A record that cannot be used (corrupt, expired, in a format the serializer does not read, or
failing to load) is a miss, logged, and overwritten by the run that recomputes it. Hits are
served from memory when they can be, so they touch neither the disk nor a thread; storage I/O
of async runs is moved to a worker thread.
"""

from __future__ import annotations

import logging
from typing import Any, final

from .._core import SerializationError, current_clock
from ._paths import RecordPathError
from ._records import CorruptRecord, decode_record, encode_record
from ._slot import MISS, Slot, drop_lock, offload, unlock

__all__ = ["RecordIO"]

logger = logging.getLogger("actorflow.cache")


@final
class RecordIO:
    """Reads and writes the records of one task, naming it in errors."""

    def __init__(self, name: str, storage_key: str | None) -> None:
        self.name = name
        self.option = "result_storage_key" if storage_key is not None else "cache key"

    def recall(self, slot: Slot) -> tuple[bool, Any]:
        """``(found, value)`` from the records kept in memory: no I/O, so called inline."""
        if slot.refresh or not slot.in_memory:
            return MISS
        entry = slot.shared.recall(slot.path)
        if entry is None:
            return MISS
        expires, fmt, value, payload = entry
        if (expires is None or current_clock().time() < expires) and slot.serializer.reads(fmt):
            if payload is None:
                return True, value
            return True, slot.serializer.loads(fmt, payload)
        slot.shared.forget(slot.path)
        return MISS

    def read(self, slot: Slot) -> Any:
        """``(found, value)`` from storage; in async runs an awaitable of it if reads block."""
        if slot.refresh:
            return MISS
        now = current_clock().time()
        if slot.is_async and slot.storage.blocking_reads:
            return offload(self.read_storage, slot, now)
        return self.read_storage(slot, now)

    def _named(self, exc: RecordPathError) -> RecordPathError:
        return RecordPathError(
            f"task {self.name!r}: its {self.option} gives a path where no record can be: {exc}"
        )

    def read_storage(self, slot: Slot, now: float) -> tuple[bool, Any]:
        """``(found, value)`` from storage, here and now (blocking)."""
        storage, path = slot.storage, slot.path
        try:
            got = storage.read(path)
        except RecordPathError as exc:
            raise self._named(exc) from None
        if got is None:
            slot.present = False
            return MISS
        data, slot.version = got
        slot.present = True
        try:
            record = decode_record(data, path)
        except CorruptRecord as exc:
            return _unusable(slot, f"is corrupt ({exc})")
        if record.expired(now):
            return MISS
        serializer = slot.serializer
        if not serializer.reads(record.format):
            return _unusable(
                slot, f"is in format {record.format!r}, which {serializer!r} does not read"
            )
        try:
            value = serializer.loads(record.format, record.payload)
        except Exception as exc:
            return _unusable(slot, f"cannot be loaded ({type(exc).__name__}: {exc})")
        if slot.in_memory:
            slot.shared.remember(
                path, record.expires, record.format, value, record.payload, slot.owner
            )
        return True, value

    def write(self, slot: Slot, value: Any) -> Any:
        """Persist ``value`` under the slot's key (in async runs, an awaitable)."""
        data, expires, fmt, payload = slot_record(slot, value)
        if slot.is_async:
            return offload(self._write_storage, slot, data, expires, fmt, value, payload)
        return self._write_storage(slot, data, expires, fmt, value, payload)

    def _write_storage(
        self,
        slot: Slot,
        data: bytes,
        expires: float | None,
        fmt: str,
        value: Any,
        payload: bytes,
    ) -> None:
        storage, path = slot.storage, slot.path
        try:
            if slot.refresh:
                written = storage.replace(path, data, None)
            elif slot.present:
                # Replace what was read (expired or unreadable), unless someone already has.
                written = storage.replace(path, data, slot.version)
            else:
                written = storage.create(path, data)  # the first result wins
        except RecordPathError as exc:
            raise self._named(exc) from None
        if written:
            if slot.in_memory:
                slot.shared.remember(path, expires, fmt, value, payload, slot.owner)
        else:
            slot.shared.forget(path)
            logger.debug(
                "cache record %r in %s was written first by another run", path, storage.location
            )
        # Let waiting processes read it now rather than when this run has finished.
        handle = drop_lock(slot)
        if handle is not None:
            unlock(storage, handle)


def _unusable(slot: Slot, why: str) -> tuple[bool, Any]:
    logger.warning(
        "cache record %r in %s %s: treated as a miss; it will be overwritten",
        slot.path,
        slot.storage.location,
        why,
    )
    return MISS


def slot_record(slot: Slot, value: Any) -> tuple[bytes, float | None, str, bytes]:
    """``value`` as the record of ``slot``: ``(record bytes, expiry, format, payload)``. A
    value the serializer refuses raises :class:`SerializationError`."""
    try:
        fmt, payload = slot.serializer.dumps(value)
    except Exception as exc:
        raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
    now = current_clock().time()
    expires = None if slot.expires_in is None else now + slot.expires_in
    return encode_record(slot.path, fmt, payload, now, expires), expires, fmt, payload
