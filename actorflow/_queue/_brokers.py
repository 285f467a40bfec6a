"""The brokers of this process: one per queue configuration, opened on first use and forgotten
in a forked child (their connections belong to the parent)."""

from __future__ import annotations

import threading

from .._core import ConfigurationError, runtime
from ._broker import Broker, QueueSettings, settings

__all__ = ["broker", "close_brokers"]

_brokers: dict[QueueSettings, Broker] = {}
_lock = threading.Lock()


def _forget_brokers() -> None:
    global _lock
    _brokers.clear()  # connections belong to the parent process
    _lock = threading.Lock()


runtime.at_fork(_forget_brokers)


def broker(config: QueueSettings | None = None) -> Broker:
    """The broker for ``config`` (by default, from the environment), made once per process."""
    if config is None:
        config = settings()
    found = _brokers.get(config)
    if found is not None:
        return found
    with _lock:
        found = _brokers.get(config)
        if found is None:
            found = _brokers[config] = _open(config)
    return found


def _open(config: QueueSettings) -> Broker:
    url = config.url
    if url.startswith(("redis://", "rediss://", "unix://")):
        from ._redis import RedisBroker

        return RedisBroker(config)
    if url.startswith("sqlite://"):
        from ._sqlite import SQLiteBroker

        return SQLiteBroker(config)
    raise ConfigurationError(
        f"ACTORFLOW_BROKER_URL {url!r} names no known broker: use redis://host:port/db or "
        "sqlite:///path/to/file"
    )


def close_brokers() -> None:
    """Close every broker of this process (tests; interpreter exit)."""
    with _lock:
        brokers = list(_brokers.values())
        _brokers.clear()
    for b in brokers:
        b.close()
