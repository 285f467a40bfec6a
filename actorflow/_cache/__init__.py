"""Result persistence and caching: policies, keys, records, storage, and each task's cache.

:func:`build_cache` turns a task's options into the :class:`TaskCache` its runs consult, or
``None`` when its results are never persisted (then caching costs nothing per run).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from .._core import NOT_SET
from ._hashing import UnhashableInput, values_digest
from ._keys import CacheKeys
from ._policies import DEFAULT, CacheKeyFnPolicy, CachePolicy, NoCache
from ._serializers import resolve_serializer
from ._storage import resolve_storage
from ._task_cache import TaskCache

__all__ = ["TaskCache", "build_cache", "identity_digest"]

logger = logging.getLogger("actorflow.cache")


def build_cache(task: Any, name: str) -> TaskCache | None:
    """The cache a task's runs consult, or ``None`` when its results are not persisted.

    As in Prefect: ``persist_result`` left unset becomes true when a policy, key function,
    storage, serializer or storage key is given; a ``cache_key_fn`` wins over ``cache_policy``;
    ``persist_result=False`` turns caching off. Left unset with nothing implying it, the task
    persists (with the ``DEFAULT`` policy) only inside a flow whose ``persist_result`` is true.
    """
    options = task.options
    policy = options.cache_policy
    key_fn = options.cache_key_fn
    storage_key = options.result_storage_key
    persist = options.persist_result
    if options.cache_unhashable not in ("error", "warn"):
        raise ValueError(
            f"cache_unhashable must be 'error' or 'warn', got {options.cache_unhashable!r}"
        )
    if policy is not NOT_SET and policy is not None and not isinstance(policy, CachePolicy):
        raise TypeError(
            f"cache_policy of task {name!r} must be a CachePolicy (see "
            f"actorflow.cache_policies), got {type(policy).__name__}"
        )
    if key_fn is not None and not callable(key_fn):
        raise TypeError(f"cache_key_fn of task {name!r} must be callable")
    if policy is not NOT_SET and key_fn is not None:
        logger.warning(
            "Both `cache_policy` and `cache_key_fn` are set on task %r; `cache_key_fn` is used.",
            name,
        )
    if key_fn is not None:
        policy = CacheKeyFnPolicy(key_fn)
    given = policy is not NOT_SET and policy is not None and not isinstance(policy, NoCache)
    if persist is None and (
        given
        or storage_key is not None
        or options.result_storage is not None
        or options.result_serializer is not None
    ):
        persist = True
    # Check storage and serializer now, so that a typo or a missing extra fails at definition.
    if options.result_storage is not None:
        resolve_storage(options.result_storage)
    if options.result_serializer is not None:
        resolve_serializer(options.result_serializer)
    expiration = _seconds(name, options.cache_expiration)
    if persist is False:
        if given:
            logger.warning(
                "Ignoring `cache_policy` of task %r because `persist_result` is False.",
                name,
            )
        return None
    if storage_key is not None:
        if not isinstance(storage_key, str):
            raise TypeError(f"result_storage_key of task {name!r} must be a str")
        return TaskCache(task, name, CacheKeys(task, None, storage_key, persist, expiration))
    if policy is NOT_SET:
        policy = DEFAULT
    if policy is None or isinstance(policy, NoCache):
        return None
    return TaskCache(task, name, CacheKeys(task, policy, None, persist, expiration))


def identity_digest(identity: Any) -> str | None:
    """The stable digest of a task identity's bound values, or ``None`` if one cannot be hashed."""
    try:
        return values_digest(identity.values)
    except UnhashableInput:
        return None


def _seconds(name: str, expiration: Any) -> float | None:
    if expiration is None:
        return None
    if isinstance(expiration, datetime.timedelta):
        return expiration.total_seconds()
    if isinstance(expiration, (int, float)) and not isinstance(expiration, bool):
        return float(expiration)
    raise TypeError(
        f"cache_expiration of task {name!r} must be a datetime.timedelta, got "
        f"{type(expiration).__name__}"
    )
