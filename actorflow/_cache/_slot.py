"""One run's record: the :class:`Slot` that cache keys make and that single-flight and record
I/O then work on, and the few helpers all three share."""

from __future__ import annotations

import logging
from typing import Any, final

from .._core import to_thread
from ._serializers import Serializer
from ._shared import Shared, shared_for
from ._storage import ResultStorage

__all__ = ["MISS", "Slot", "drop_lock", "offload", "unlock"]

logger = logging.getLogger("actorflow.cache")

#: ``(found, value)`` for a run that found nothing to reuse.
MISS = (False, None)


@final
class Slot:
    """One run's record: where it lives and what the run has learnt about it."""

    __slots__ = (
        "claimed",
        "expires_in",
        "in_memory",
        "is_async",
        "lock",
        "owner",
        "path",
        "present",
        "refresh",
        "serializer",
        "shared",
        "storage",
        "version",
    )

    def __init__(
        self,
        storage: ResultStorage,
        path: str,
        serializer: Serializer,
        expires_in: float | None,
        in_memory: bool,
        refresh: bool,
        is_async: bool,
        owner: Any = None,
    ) -> None:
        self.storage = storage
        self.shared: Shared = shared_for(storage.location)
        self.path = path
        self.serializer = serializer
        self.expires_in = expires_in
        self.in_memory = in_memory
        self.refresh = refresh
        self.is_async = is_async
        #: The run this record's key names (RUN_ID): kept in memory only while it lasts.
        self.owner = owner
        self.claimed = False
        #: The storage's lock for ``path`` while this run holds it.
        self.lock: Any = None
        #: Whether storage held something under ``path`` at the last look, and its version.
        self.present = False
        self.version: Any = None

    def __repr__(self) -> str:
        return f"Slot({self.path!r} in {self.storage.location})"


async def offload(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on a worker thread (storage I/O of async runs)."""
    return await to_thread(fn, *args)


def unlock(storage: ResultStorage, handle: Any) -> None:
    """Release a storage lock; a failure is logged, never raised into the run."""
    try:
        storage.unlock(handle)
    except Exception:
        logger.exception("releasing a cache lock in %s failed", storage.location)


def drop_lock(slot: Slot) -> Any:
    """Take the storage lock out of ``slot``: its handle, or ``None`` if it held none."""
    handle, slot.lock = slot.lock, None
    return handle
