"""The record of a persisted result: a small header and the serialized payload.

Layout: the line ``actorflow-record 1``, one JSON header line, then the payload. The header
names the storage key, the payload's format, when the record was made and when it expires,
and the payload's length and SHA-256. Anything that does not check out (a torn write, a
truncated or foreign file, a flipped byte) is :class:`CorruptRecord`, which readers treat as a
miss, never as a value.
"""

from __future__ import annotations

import hashlib
from typing import Any, final

import attrs
import orjson

__all__ = ["CorruptRecord", "Record", "decode_record", "encode_record"]

MAGIC = b"actorflow-record 1\n"


class CorruptRecord(Exception):
    """A stored record that cannot be trusted; the reason says why."""


@final
@attrs.frozen
class Record:
    """A decoded record: metadata and the still-serialized payload."""

    key: str
    format: str
    created: float
    expires: float | None
    payload: bytes

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


def encode_record(
    key: str, fmt: str, payload: bytes, created: float, expires: float | None
) -> bytes:
    header = orjson.dumps(
        {
            "key": key,
            "format": fmt,
            "created": created,
            "expires": expires,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
    )
    return b"".join((MAGIC, header, b"\n", payload))


def decode_record(data: bytes, key: str) -> Record:
    """Parse and verify ``data`` as the record stored under ``key``."""
    if not data.startswith(MAGIC):
        raise CorruptRecord("not an actorflow record (bad magic line)")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise CorruptRecord("truncated header")
    try:
        header: dict[str, Any] = orjson.loads(data[len(MAGIC) : end])
        payload = data[end + 1 :]
        size, digest = header["size"], header["sha256"]
        stored_key, fmt = header["key"], header["format"]
        created, expires = float(header["created"]), header["expires"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptRecord(f"unreadable header ({exc})") from None
    if len(payload) != size:
        raise CorruptRecord(f"payload is {len(payload)} bytes, the header says {size}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptRecord("payload checksum mismatch")
    if stored_key != key:
        raise CorruptRecord(f"record belongs to key {stored_key!r}")
    if not isinstance(fmt, str) or (expires is not None and not isinstance(expires, (int, float))):
        raise CorruptRecord("malformed header fields")
    return Record(
        key=key,
        format=fmt,
        created=created,
        expires=None if expires is None else float(expires),
        payload=payload,
    )
