"""The broker interface every queue backend provides, and how the one in use is chosen.

A broker holds two things per namespace: the queue of runs waiting for a worker (one queue per
``task_key``) and the record of each run (its latest state, and its outcome once final). Both
backends are synchronous; callers keep them off event loops (a background thread of the client,
the worker's own threads).

Delivery is at least once, with exactly one final state:

- ``claim`` leases runs to a worker for ``lease`` seconds and gives each delivery a fencing
  ``token`` (the run's delivery count); ``renew`` extends leases (the worker's heartbeat);
- ``finish`` writes the final state and outcome and acknowledges the run in one atomic step,
  only if the token is still the run's latest and no outcome is recorded yet: the first write
  wins, and a worker that lost its lease is fenced off;
- a run whose lease expired is claimed again by any worker; one claimed more than
  ``max_deliveries`` times is dead-lettered: recorded ``Crashed``, never run again.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Protocol

import attrs

from .._core import ConfigurationError

__all__ = [
    "Broker",
    "Delivery",
    "NewRun",
    "QueueSettings",
    "Record",
    "dead_letter_message",
    "settings",
]

DEFAULT_LEASE = 30.0
DEFAULT_MAX_DELIVERIES = 5


@attrs.frozen
class QueueSettings:
    """Where runs are queued and how long a worker's lease on a run lasts."""

    url: str
    namespace: str
    lease: float = DEFAULT_LEASE
    max_deliveries: int = DEFAULT_MAX_DELIVERIES


def _float_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ConfigurationError(f"{name} must be positive, got {text!r}")
    return value


_ENV = (
    "ACTORFLOW_BROKER_URL",
    "ACTORFLOW_HOME",
    "ACTORFLOW_QUEUE_NAMESPACE",
    "ACTORFLOW_QUEUE_LEASE",
    "ACTORFLOW_QUEUE_MAX_DELIVERIES",
)
_read: dict[tuple[str | None, ...], QueueSettings] = {}


def settings() -> QueueSettings:
    """The queue configuration, read from the environment at each use (see :func:`_settings`)."""
    environ = os.environ
    key = tuple(environ.get(name) for name in _ENV)
    found = _read.get(key)
    if found is None:
        found = _settings()
        if len(_read) > 64:
            _read.clear()
        _read[key] = found
    return found


def _settings() -> QueueSettings:
    """The queue configuration, read from the environment at each use.

    ``ACTORFLOW_BROKER_URL``: ``redis://host:port/db`` for Redis, ``sqlite:///path`` for a SQLite
    file; by default ``$ACTORFLOW_HOME/queue.sqlite3``. ``ACTORFLOW_QUEUE_NAMESPACE`` isolates
    queues sharing one broker (default ``default``). ``ACTORFLOW_QUEUE_LEASE`` (seconds, default
    30) and ``ACTORFLOW_QUEUE_MAX_DELIVERIES`` (default 5).
    """
    url = os.environ.get("ACTORFLOW_BROKER_URL") or ""
    if not url:
        home = os.path.expanduser(os.environ.get("ACTORFLOW_HOME") or "~/.actorflow")
        url = "sqlite:///" + os.path.join(os.path.abspath(home), "queue.sqlite3")
    namespace = os.environ.get("ACTORFLOW_QUEUE_NAMESPACE") or "default"
    lease = _float_env("ACTORFLOW_QUEUE_LEASE", DEFAULT_LEASE)
    deliveries_text = os.environ.get("ACTORFLOW_QUEUE_MAX_DELIVERIES") or ""
    try:
        deliveries = int(deliveries_text) if deliveries_text else DEFAULT_MAX_DELIVERIES
    except ValueError:
        deliveries = 0
    if deliveries < 1:
        raise ConfigurationError(
            f"ACTORFLOW_QUEUE_MAX_DELIVERIES must be a positive integer, got {deliveries_text!r}"
        )
    return QueueSettings(url, namespace, lease, deliveries)


@attrs.frozen
class NewRun:
    """A run to queue: its id (32 hex digits), task, name, pickled ``(args, kwargs)``, and
    the key of the client that waits for it (``reply``, told when the run is final)."""

    id: str
    task_key: str
    name: str
    payload: bytes
    reply: str
    scheduled_ns: int


@attrs.frozen
class Delivery:
    """One lease on a run, held by one worker: ``token`` fences every write made under it."""

    id: str
    task_key: str
    name: str
    payload: bytes
    token: int
    handle: str = ""  # the backend's own name for the queued message (a stream entry id)


@attrs.frozen
class Record:
    """What the broker knows of a run: its latest state, and its pickled data once final."""

    type: str
    name: str
    timestamp_ns: int
    message: str | None
    data: bytes | None
    final: bool


class Broker(Protocol):
    """A durable queue of runs and their records (see the module's docstring)."""

    settings: QueueSettings

    def enqueue(self, runs: Sequence[NewRun]) -> None:
        """Record each run ``Scheduled`` and queue it, all at once."""

    def claim(
        self, worker: str, task_keys: Sequence[str], count: int, block: float
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Lease up to ``count`` runs of these tasks to ``worker``, waiting up to ``block``
        seconds for one; expired leases are taken over. Returns ``(claimed, dead)``: runs to
        run, and runs past ``max_deliveries`` (already recorded Crashed, not to run)."""

    def renew(self, worker: str, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Extend the leases; returns those lost (fenced: another worker took them over)."""

    def update(self, updates: Sequence[tuple[Delivery, Record]]) -> None:
        """Record non-final states, each only while its lease holds."""

    def finish(self, outcomes: Sequence[tuple[Delivery, Record]]) -> list[bool]:
        """Record final states and acknowledge: per run, whether this write won."""

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give leases back at once (a stopping worker): the runs go to the next worker."""

    def read(self, ids: Sequence[str]) -> list[Record | None]:
        """The records of these runs (``None`` for an unknown id)."""

    def finished_since(self, reply: str, block: float) -> list[str]:
        """Ids of runs of client ``reply`` that became final since the last call, waiting up to
        ``block`` seconds for one."""

    def queued(self) -> dict[str, int]:
        """Runs waiting, per task key."""

    def close(self) -> None:
        """Release connections."""


def dead_letter_message(deliveries: int) -> str:
    return (
        f"Run was dead-lettered after {deliveries} deliveries: each time, its worker stopped "
        "(killed, or lost its lease) before the run finished"
    )


def dead_letter_data(deliveries: int) -> bytes:
    from .._core import CrashedRun

    return pickle.dumps(CrashedRun(dead_letter_message(deliveries)))
