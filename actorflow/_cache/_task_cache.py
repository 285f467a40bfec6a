"""The cache of one task: what the engine consults around each run.

The engine asks, in order: :meth:`TaskCache.key_for` (a :class:`Slot` naming the record, or
``None`` when this run is not cached), :meth:`~TaskCache.recall` (memory) and
:meth:`~TaskCache.read` (storage); on a miss :meth:`~TaskCache.claim` (wait for the run of this
process already computing the key, or become it) and :meth:`~TaskCache.acquire` (the lock
shared with other processes, then a second look); after the body :meth:`~TaskCache.write`.

Each concept lives in a module of its own: keys in ``_keys.py``, compute-once in
``_single_flight.py``, reading and writing records in ``_record_io.py``. A task cache binds
their operations for one task; the engine calls them directly, with no layer in between.
"""

from __future__ import annotations

from typing import Any, final

from ._keys import CacheKeys, CacheKeyWarning
from ._record_io import RecordIO
from ._single_flight import SingleFlight
from ._slot import Slot

__all__ = ["CacheKeyWarning", "Slot", "TaskCache"]


@final
class TaskCache:
    """Resolved cache options of a task, and the operations the engine performs with them."""

    def __init__(self, task: Any, name: str, keys: CacheKeys) -> None:
        self.task = task
        self.name = name
        self.policy = keys.policy
        #: ``None``: the task said nothing; it persists only inside a flow that does.
        self.persist = keys.persist
        self.keys = keys
        self.records = records = RecordIO(name, keys.storage_key)
        self.single_flight = single_flight = SingleFlight(records.read_storage)
        # -- the key
        self.key_for = keys.key_for
        # -- reading
        self.recall = records.recall
        self.read = records.read
        # -- computing once
        self.claim = single_flight.claim
        self.acquire = single_flight.acquire
        # -- writing
        self.write = records.write

    def scope(self) -> str:
        """The text that scopes this task's policy keys."""
        return self.keys.scope

    def __repr__(self) -> str:
        return f"TaskCache({self.name!r}, policy={self.policy!r})"
