"""What the runs of one process share per storage location: recent records in memory, and
which run is computing which key.

Both are process-wide by nature (threads and event loops of one process meet here), so they
live in one registry keyed by the storage's location, not per task.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, final

__all__ = ["Shared", "shared_for"]

#: Records kept in memory per location, and the largest payload kept.
MAX_ENTRIES = 1024
MAX_PAYLOAD = 4 * 1024 * 1024

# Values that cannot be mutated by whoever receives them are kept as they are; anything else is
# kept serialized and loaded afresh for each hit, so a caller mutating its result cannot change
# what the next hit returns.
_IMMUTABLE = frozenset({int, float, str, bool, bytes, type(None), complex})


@final
class Shared:
    """Per-location memory of records (an LRU) and the registry of keys being computed."""

    __slots__ = ("inflight", "lock", "memory")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # path -> (expires, format, value, payload); value is used when payload is None
        self.memory: OrderedDict[str, tuple[float | None, str, Any, bytes | None]] = OrderedDict()
        self.inflight: dict[str, Any] = {}

    def remember(
        self, path: str, expires: float | None, fmt: str, value: Any, payload: bytes
    ) -> None:
        entry: tuple[float | None, str, Any, bytes | None]
        if type(value) in _IMMUTABLE:
            entry = (expires, fmt, value, None)
        elif len(payload) <= MAX_PAYLOAD:
            entry = (expires, fmt, None, payload)
        else:
            self.forget(path)
            return
        with self.lock:
            memory = self.memory
            memory[path] = entry
            memory.move_to_end(path)
            if len(memory) > MAX_ENTRIES:
                memory.popitem(last=False)

    def recall(self, path: str) -> tuple[float | None, str, Any, bytes | None] | None:
        with self.lock:
            entry = self.memory.get(path)
            if entry is not None:
                self.memory.move_to_end(path)
            return entry

    def forget(self, path: str) -> None:
        with self.lock:
            self.memory.pop(path, None)


_registry: dict[str, Shared] = {}
_registry_lock = threading.Lock()


def shared_for(location: str) -> Shared:
    shared = _registry.get(location)
    if shared is None:
        with _registry_lock:
            shared = _registry.setdefault(location, Shared())
    return shared
