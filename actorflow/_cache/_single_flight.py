"""Single-flight: a key is computed once, by one run, across threads and processes.

Within a process, runs of one key meet in the location's registry of keys being computed
(:meth:`SingleFlight.claim`): the first computes, the others wait for it and read its record.
Across processes, the computing run also takes the storage's lock for the key
(:meth:`SingleFlight.acquire`) and looks again once it holds it. Both are released when the
run finishes, whatever its end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, final

import anyio

from .._core import blocking_region, current_clock, runtime
from ._slot import MISS, Slot, drop_lock, offload, unlock

__all__ = ["SingleFlight"]

#: How long a run waiting for a storage lock first sleeps, and at most (it doubles each time).
_FIRST_DELAY = 0.002
_MAX_DELAY = 0.25


@final
class SingleFlight:
    """Compute-once for the records of one task; ``read_storage(slot, now)`` is the second
    look, taken once the lock is held."""

    def __init__(self, read_storage: Callable[[Slot, float], tuple[bool, Any]]) -> None:
        self._read_storage = read_storage

    def claim(self, run: Any, slot: Slot) -> Any:
        """``None`` if ``run`` is now the one computing the slot's key in this process;
        otherwise the run that is (wait for it, then read again)."""
        shared = slot.shared
        with shared.lock:
            other = shared.inflight.get(slot.path)
            if other is not None and not other.done():
                if _is_ancestor(other, run):
                    return None  # a run nested in the computing run: waiting would deadlock
                return other
            shared.inflight[slot.path] = run
            slot.claimed = True
        run.add_done_callback(lambda: _release(run, slot))
        return None

    def acquire(self, slot: Slot) -> Any:
        """Take the key's lock shared with other processes, then look again: ``(found, value)``."""
        if not slot.claimed:
            return MISS
        now = current_clock().time()
        if slot.is_async:
            return self._acquire_async(slot, now)
        delay = _FIRST_DELAY
        with blocking_region():
            while not _try_lock(slot):
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
        return MISS if slot.refresh else self._read_storage(slot, now)

    async def _acquire_async(self, slot: Slot, now: float) -> tuple[bool, Any]:
        offloaded = slot.storage.blocking_reads
        delay = _FIRST_DELAY
        while True:
            if offloaded:
                held = await offload(_try_lock, slot)
            else:
                held = _try_lock(slot)
            if held:
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
        if slot.refresh:
            return MISS
        if offloaded:
            found: tuple[bool, Any] = await offload(self._read_storage, slot, now)
            return found
        return self._read_storage(slot, now)


def _try_lock(slot: Slot) -> bool:
    handle = slot.storage.try_lock(slot.path)
    if handle is None:
        return False
    slot.lock = handle  # set here, in the same call, so a cancelled waiter cannot leak it
    return True


def _release(run: Any, slot: Slot) -> None:
    shared = slot.shared
    with shared.lock:
        if shared.inflight.get(slot.path) is run:
            del shared.inflight[slot.path]
    handle = drop_lock(slot)
    if handle is not None:
        if slot.storage.blocking_reads:
            runtime.default_pool().submit(unlock, slot.storage, handle)
        else:
            unlock(slot.storage, handle)


def _is_ancestor(candidate: Any, run: Any) -> bool:
    parent = run.parent
    while parent is not None:
        if parent is candidate:
            return True
        parent = parent.parent
    return False
