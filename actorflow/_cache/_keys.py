"""Cache keys: the record a run of a task is cached under, or none.

A key is a ``result_storage_key`` template filled with the call's values, or the text a cache
policy gives, scoped to the task's identity and digested (a key function's plain key is kept
as it is, so any task may share it). :meth:`CacheKeys.key_for` also settles where the record
lives and how it is serialized, following the enclosing flows for options the task leaves unset.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, final

from .._core import ParameterBindError
from ._hashing import CacheKeyError, UnhashableInput, digest_text, values_digest
from ._paths import check_path
from ._policies import CacheKeyFnPolicy, CachePolicy, KeyContext
from ._serializers import resolve_serializer
from ._slot import Slot
from ._storage import resolve_storage

__all__ = ["CacheKeyWarning", "CacheKeys"]

_AUTO = resolve_serializer(None)
_VERBATIM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")


class CacheKeyWarning(UserWarning):
    """A run went uncached because an input could not be hashed (``cache_unhashable="warn"``)."""


@final
class CacheKeys:
    """How a task's runs find their record: its key options, resolved once per task."""

    def __init__(
        self,
        task: Any,
        policy: CachePolicy | None,
        storage_key: str | None,
        persist: bool | None,
        expiration: float | None,
    ) -> None:
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
        self.scope = _scope_of(task.identity)
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

    def key_for(self, run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Slot | None:
        """The record of this run, or ``None`` when this run is not cached."""
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
            message = _unhashable_message(task, exc)
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
        return digest_text(f"{self.scope}\x00{text}")


def _unhashable_message(task: Any, exc: UnhashableInput) -> str:
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
