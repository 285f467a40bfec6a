"""The cache of one task: what the engine consults around each run.

The engine asks, in order: :meth:`TaskCache.key_for` (a :class:`Slot` naming the record, or
``None`` when this run is not cached), :meth:`~TaskCache.recall` (memory) and
:meth:`~TaskCache.read` (storage); on a miss :meth:`~TaskCache.claim` (wait for the run of this
process already computing the key, or become it) and :meth:`~TaskCache.acquire` (the lock
shared with other processes, then a second look); after the body :meth:`~TaskCache.write`.
Locks are released when the run finishes, whatever its end. Hits are served from memory when
they can be, so they touch neither the disk nor a thread; storage I/O of async runs is moved to
a worker thread.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from typing import Any, final

import anyio

from .._core import (
    ParameterBindError,
    SerializationError,
    blocking_region,
    current_clock,
    runtime,
    to_thread,
)
from ._hashing import CacheKeyError, UnhashableInput, digest_text, values_digest
from ._paths import RecordPathError, check_path
from ._policies import CacheKeyFnPolicy, CachePolicy, KeyContext
from ._records import CorruptRecord, decode_record, encode_record
from ._serializers import Serializer, resolve_serializer
from ._shared import Shared, shared_for
from ._storage import ResultStorage, resolve_storage

__all__ = ["CacheKeyWarning", "Slot", "TaskCache"]

logger = logging.getLogger("actorflow.cache")

MISS = (False, None)
_AUTO = resolve_serializer(None)
_VERBATIM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


class CacheKeyWarning(UserWarning):
    """A run went uncached because an input could not be hashed (``cache_unhashable="warn"``)."""


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
        self.lock: Any = None
        #: Whether storage held something under ``path`` at the last look, and its version.
        self.present = False
        self.version: Any = None

    def __repr__(self) -> str:
        return f"Slot({self.path!r} in {self.storage.location})"


@final
class TaskCache:
    """Resolved cache options of a task, and the operations the engine performs with them."""

    def __init__(
        self,
        task: Any,
        name: str,
        policy: CachePolicy | None,
        storage_key: str | None,
        persist: bool | None,
        expiration: float | None,
    ) -> None:
        self.task = task
        self.name = name
        self.policy = policy
        self.storage_key = storage_key
        #: ``None``: the task said nothing; it persists only inside a flow that does.
        self.persist = persist
        self.expiration = expiration
        self.verbatim = isinstance(policy, CacheKeyFnPolicy)
        # Policy keys are scoped to the task's identity (its import name, ``name=`` and bound
        # values), so that two tasks with equal inputs never share a record, while the key stays
        # the same however the module is imported (``__main__`` in one process, ``jobs`` in
        # another). Made once, from the values bound when the task was defined.
        self._scope = _scope_of(task.identity)
        options = task.options
        self.storage = options.result_storage
        if policy is not None and policy.key_storage is not None:
            self.storage = policy.key_storage  # the policy's own place for its records
        self.serializer = (
            None
            if options.result_serializer is None
            else resolve_serializer(options.result_serializer)
        )
        self.in_memory = bool(options.cache_result_in_memory)
        self.refresh = bool(options.refresh_cache)
        self.is_async = bool(task.isasync)
        self.warn_unhashable = options.cache_unhashable == "warn"

    def __repr__(self) -> str:
        return f"TaskCache({self.name!r}, policy={self.policy!r})"

    # -- the key --------------------------------------------------------------------------------
    def key_for(self, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Slot | None:
        flow_run = run.flow
        if self.persist is None and (flow_run is None or not flow_run.persist_result):
            return None
        task = run.task  # a copy bound to an instance (or class) binds it as the first parameter
        try:
            params = task.bind(args, kwargs)
        except ParameterBindError:
            return None  # the run fails on its own, with the usual message
        try:
            path = self._path(task, run, flow_run, params)
        except UnhashableInput as exc:
            message = self._unhashable_message(task, exc)
            if not self.warn_unhashable:
                raise UnhashableInput(message) from None
            warnings.warn(f"{message}; this run is not cached", CacheKeyWarning, stacklevel=2)
            return None
        except CacheKeyError:
            raise
        except Exception as exc:
            raise CacheKeyError(
                f"task {task.name!r}: computing its cache key raised {type(exc).__name__}: {exc}"
            ) from exc
        if path is None:
            return None
        storage, serializer, in_memory = self.storage, self.serializer, self.in_memory
        if flow_run is not None:  # unset options follow the enclosing flows'
            if storage is None:
                storage = _flow_option(flow_run, "result_storage")
            if serializer is None:
                serializer = resolve_serializer(_flow_option(flow_run, "result_serializer"))
            in_memory = in_memory and _flow_option(flow_run, "cache_result_in_memory") is not False
        owner = None
        if self.policy is not None and self.policy.keys_on_run:
            owner = flow_run or run.parent
            # Keyed on this very run, which never repeats: no later run can hit it in memory.
            in_memory = in_memory and owner is not None
        return Slot(
            resolve_storage(storage),
            path,
            serializer or _AUTO,
            self.expiration,
            in_memory,
            self.refresh,
            self.is_async,
            owner,
        )

    def _path(self, task: Any, run: Any, flow_run: Any, params: dict[str, Any]) -> str | None:
        template = self.storage_key
        if template is not None:
            return check_path(
                template.format(parameters=params, task_run=run, flow_run=flow_run, task=task)
            )
        policy = self.policy
        assert policy is not None
        flow_params = (
            flow_run.parameters if flow_run is not None and policy.needs_flow_parameters else {}
        )
        text = policy.key_text(KeyContext(task, run, params), params, flow_params)
        if text is None:
            return None
        if self.verbatim and len(text) <= 200 and _VERBATIM.fullmatch(text):
            return text  # a key function's key is the record's name, shared by any task
        return digest_text(f"{self.scope()}\x00{text}")

    def scope(self) -> str:
        """The text that scopes this task's policy keys."""
        return self._scope

    def _unhashable_message(self, task: Any, exc: UnhashableInput) -> str:
        kind = getattr(exc, "kind", "input")
        name = getattr(exc, "argument", None)
        if name is None:
            return f"task {task.name!r}: its cache key cannot be computed: {exc}"
        where = f"at {name}{exc.where}: " if exc.where else ""
        return (
            f"task {task.name!r}: {kind} {name!r} cannot be hashed stably for the cache key "
            f"({where}{exc.reason}). Leave it out of the key with "
            f"`cache_policy=<policy> - {name!r}`, give a `cache_key_fn`, use "
            '`cache_policy=NO_CACHE`, or pass `cache_unhashable="warn"` to run such calls '
            "uncached"
        )

    # -- reading --------------------------------------------------------------------------------
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
            return _offload(self._read_storage, slot, now)
        return self._read_storage(slot, now)

    def _named(self, exc: RecordPathError) -> RecordPathError:
        option = "result_storage_key" if self.storage_key is not None else "cache key"
        return RecordPathError(
            f"task {self.name!r}: its {option} gives a path where no record can be: {exc}"
        )

    def _read_storage(self, slot: Slot, now: float) -> tuple[bool, Any]:
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
            logger.warning(
                "cache record %r in %s is corrupt (%s): treated as a miss; it will be overwritten",
                path,
                storage.location,
                exc,
            )
            return MISS
        if record.expired(now):
            return MISS
        serializer = slot.serializer
        if not serializer.reads(record.format):
            logger.warning(
                "cache record %r in %s is in format %r, which %r does not read: treated as a "
                "miss; it will be overwritten",
                path,
                storage.location,
                record.format,
                serializer,
            )
            return MISS
        try:
            value = serializer.loads(record.format, record.payload)
        except Exception as exc:
            logger.warning(
                "cache record %r in %s cannot be loaded (%s: %s): treated as a miss; it will "
                "be overwritten",
                path,
                storage.location,
                type(exc).__name__,
                exc,
            )
            return MISS
        if slot.in_memory:
            slot.shared.remember(
                path, record.expires, record.format, value, record.payload, slot.owner
            )
        return True, value

    # -- computing once -------------------------------------------------------------------------
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
        run.add_done_callback(lambda: self._release(run, slot))
        return None

    def acquire(self, slot: Slot) -> Any:
        """Take the key's lock shared with other processes, then look again: ``(found, value)``."""
        if not slot.claimed:
            return MISS
        now = current_clock().time()
        if slot.is_async:
            return self._acquire_async(slot, now)
        delay = 0.002
        with blocking_region():
            while not self._try_lock(slot):
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        return MISS if slot.refresh else self._read_storage(slot, now)

    async def _acquire_async(self, slot: Slot, now: float) -> tuple[bool, Any]:
        offload = slot.storage.blocking_reads
        delay = 0.002
        while True:
            if offload:
                held = await _offload(self._try_lock, slot)
            else:
                held = self._try_lock(slot)
            if held:
                break
            await anyio.sleep(delay)
            delay = min(delay * 2, 0.25)
        if slot.refresh:
            return MISS
        if offload:
            found: tuple[bool, Any] = await _offload(self._read_storage, slot, now)
            return found
        return self._read_storage(slot, now)

    def _try_lock(self, slot: Slot) -> bool:
        handle = slot.storage.try_lock(slot.path)
        if handle is None:
            return False
        slot.lock = handle  # set here, in the same call, so a cancelled waiter cannot leak it
        return True

    def _release(self, run: Any, slot: Slot) -> None:
        shared = slot.shared
        with shared.lock:
            if shared.inflight.get(slot.path) is run:
                del shared.inflight[slot.path]
        handle, slot.lock = slot.lock, None
        if handle is not None:
            if slot.storage.blocking_reads:
                runtime.default_pool().submit(_unlock, slot.storage, handle)
            else:
                _unlock(slot.storage, handle)

    # -- writing --------------------------------------------------------------------------------
    def write(self, slot: Slot, value: Any) -> Any:
        """Persist ``value`` under the slot's key (in async runs, an awaitable)."""
        try:
            fmt, payload = slot.serializer.dumps(value)
        except Exception as exc:
            raise SerializationError(f"{type(exc).__name__}: {exc}") from exc
        now = current_clock().time()
        expires = None if slot.expires_in is None else now + slot.expires_in
        data = encode_record(slot.path, fmt, payload, now, expires)
        if slot.is_async:
            return _offload(self._write_storage, slot, data, expires, fmt, value, payload)
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
        handle, slot.lock = slot.lock, None
        if handle is not None:
            _unlock(storage, handle)


async def _offload(fn: Any, *args: Any) -> Any:
    return await to_thread(fn, *args)


def _unlock(storage: ResultStorage, handle: Any) -> None:
    try:
        storage.unlock(handle)
    except Exception:
        logger.exception("releasing a cache lock in %s failed", storage.location)


def _is_ancestor(candidate: Any, run: Any) -> bool:
    parent = run.parent
    while parent is not None:
        if parent is candidate:
            return True
        parent = parent.parent
    return False


def _scope_of(identity: Any) -> str:
    """Scope text for a task identity.

    A task whose bound values cannot be hashed stably (a closure over a lock or a client) is
    scoped to its own identity object instead: its records are reused within this process,
    never shared with another task, and never found by another process.
    """
    try:
        values = values_digest(identity.values) if identity.values else ""
    except UnhashableInput:
        values = identity.local_token
    return f"{identity.where}\x00{identity.name}\x00{values}"


def _flow_option(flow_run: Any, name: str) -> Any:
    """The first setting of ``name`` on the enclosing flows, innermost first."""
    while flow_run is not None:
        if flow_run.is_flow:
            value = getattr(flow_run.spec, name, None)
            if value is not None:
                return value
        flow_run = flow_run.parent
    return None
