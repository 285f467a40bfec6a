"""What the runs of one process share per storage location: recent records in memory, and
which run is computing which key.

Both are process-wide by nature (threads and event loops of one process meet here), so they
live in one registry keyed by the storage's location, not per task, held by the runtime.

The memory tier is bounded by bytes as well as by entries, and keeps nothing that cannot be hit
again: a record whose key names a run (``RUN_ID``, part of ``DEFAULT``) is kept only while that
run lasts, and forgotten when it ends.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any, final

import attrs

from .._core import runtime

__all__ = ["MemoryStatistics", "Shared", "shared_for"]

#: Records kept in memory per location: at most this many, this many bytes in all, and none
#: larger than ``MAX_PAYLOAD`` bytes.
MAX_ENTRIES = 1024
MAX_BYTES = 64 * 1024 * 1024
MAX_PAYLOAD = 4 * 1024 * 1024

# Values that cannot be mutated by whoever receives them are kept as they are; anything else is
# kept serialized and loaded afresh for each hit, so a caller mutating its result cannot change
# what the next hit returns.
_IMMUTABLE = frozenset({int, float, str, bool, bytes, type(None), complex})
_SIZED = (str, bytes)

Entry = tuple[float | None, str, Any, bytes | None]


@attrs.frozen
class MemoryStatistics:
    entries: int
    bytes: int
    #: Runs whose end will forget the records keyed on them.
    owners: int


@final
class Shared:
    """Per-location memory of records (an LRU bounded by bytes) and the registry of keys being
    computed."""

    __slots__ = ("_bytes", "_owned", "_sizes", "inflight", "lock", "memory")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # path -> (expires, format, value, payload); value is used when payload is None
        self.memory: OrderedDict[str, Entry] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0
        # id of a run -> paths keyed on it, forgotten when it ends
        self._owned: dict[int, set[str]] = {}
        self.inflight: dict[str, Any] = {}

    def statistics(self) -> MemoryStatistics:
        with self.lock:
            return MemoryStatistics(len(self.memory), self._bytes, len(self._owned))

    def remember(
        self,
        path: str,
        expires: float | None,
        fmt: str,
        value: Any,
        payload: bytes,
        owner: Any = None,
    ) -> None:
        """Keep a record; ``owner`` is the run its key names (kept only while it lasts)."""
        entry: Entry
        if type(value) in _IMMUTABLE:
            size = sys.getsizeof(value) if isinstance(value, _SIZED) else 64
            entry = (expires, fmt, value, None)
        else:
            size = len(payload)
            entry = (expires, fmt, None, payload)
        if size > MAX_PAYLOAD:
            self.forget(path)
            return
        watch = False
        with self.lock:
            self._drop(path)
            memory = self.memory
            memory[path] = entry
            self._sizes[path] = size
            self._bytes += size
            if owner is not None:
                key = id(owner)
                paths = self._owned.get(key)
                if paths is None:
                    paths = self._owned[key] = set()
                    watch = True
                paths.add(path)
            while len(memory) > MAX_ENTRIES or self._bytes > MAX_BYTES:
                self._drop(next(iter(memory)))
        if watch:
            # Called at once if the owner has already ended: the record is not kept.
            owner.add_done_callback(lambda: self._owner_ended(id(owner)))

    def _drop(self, path: str) -> None:
        # With the lock held.
        if self.memory.pop(path, None) is not None:
            self._bytes -= self._sizes.pop(path)

    def _owner_ended(self, key: int) -> None:
        with self.lock:
            for path in self._owned.pop(key, ()):
                self._drop(path)

    def recall(self, path: str) -> Entry | None:
        with self.lock:
            entry = self.memory.get(path)
            if entry is not None:
                self.memory.move_to_end(path)
            return entry

    def forget(self, path: str) -> None:
        with self.lock:
            self._drop(path)


@final
class _Registry:
    """The :class:`Shared` of every location used in this process."""

    __slots__ = ("by_location", "lock")

    def __init__(self) -> None:
        self.by_location: dict[str, Shared] = {}
        self.lock = threading.Lock()


def shared_for(location: str) -> Shared:
    """What this process shares for ``location``. The registry is a slot of the runtime, so a
    forked child (and a test after ``runtime.reset()``) starts with an empty one."""
    registry = runtime.slot("cache.shared", _Registry)
    shared = registry.by_location.get(location)
    if shared is None:
        with registry.lock:
            shared = registry.by_location.setdefault(location, Shared())
    return shared
