"""Record paths: what a storage key may be, and the error for a key that cannot hold a record.

Every storage (local directories, object stores) checks keys the same way, so this lives apart
from all of them.
"""

from __future__ import annotations

from .._core import ActorflowException

__all__ = ["RecordPathError", "check_path"]


class RecordPathError(ActorflowException, ValueError):
    """A record's path cannot hold a record: it is a folder of other records, or it lies under
    one (a key cannot be both a record and a folder of records)."""


def check_path(path: str) -> str:
    """Reject storage keys that would escape the storage root."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(
            f"Invalid result storage key {path!r}: use a relative path of plain names "
            "separated by '/', without '.' or '..'"
        )
    return path
