"""The frozen records ``statistics()`` returns: of a run, a flow run, a worker pool and the thread
cache. Loaded by the first ``statistics()`` call, not with the core."""

from __future__ import annotations

import attrs

__all__ = ["ActorStatistics", "PoolStatistics", "SupervisorStatistics", "ThreadCacheStatistics"]


@attrs.frozen
class ActorStatistics:
    state: str
    transitions: int
    mailbox: int
    waiters: int


@attrs.frozen
class SupervisorStatistics:
    state: str
    transitions: int
    children_in_flight: int
    children_failed: int


@attrs.frozen
class PoolStatistics:
    max_workers: int
    #: Threads working for the pool now (running a body, seceded, or taking the next item).
    threads: int
    running: int
    seceded: int
    queued: int


@attrs.frozen
class ThreadCacheStatistics:
    threads: int
    idle: int
