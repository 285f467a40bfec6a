"""The clock behind retry delays and cache expiration, replaceable for exact, instant tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol, final


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch."""

    def sleep_sync(self, seconds: float) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


@final
class SystemClock:
    """Real time: ``time.time``, ``time.sleep`` and the event loop's own sleep."""

    def time(self) -> float:
        return time.time()

    def sleep_sync(self, seconds: float) -> None:
        time.sleep(seconds)

    async def sleep(self, seconds: float) -> None:
        import anyio

        await anyio.sleep(seconds)


@final
class VirtualClock:
    """A clock that only moves when slept on or advanced: sleeps return at once.

    Every requested sleep is recorded in :attr:`sleeps`, so tests can assert exact delays.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def sleep_sync(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += seconds

    async def sleep(self, seconds: float) -> None:
        import anyio

        self.sleep_sync(seconds)
        await anyio.lowlevel.checkpoint()


_SYSTEM_CLOCK = SystemClock()
_clock: ContextVar[Clock | None] = ContextVar("actorflow_clock", default=None)


def current_clock() -> Clock:
    return _clock.get() or _SYSTEM_CLOCK


@contextlib.contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Use ``clock`` for retry delays and cache expiration of runs inside the block."""
    token = _clock.set(clock)
    try:
        yield clock
    finally:
        _clock.reset(token)
