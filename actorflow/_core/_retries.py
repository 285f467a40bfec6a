"""Retry policy: how long to wait before each retry, and option validation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

RetryDelay = float | int | Sequence[float] | Callable[[int], Sequence[float]] | None


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """``retry_delay_seconds`` that doubles: ``factor * 2**n`` for retry ``n`` (0-based)."""

    def retry_backoff_callable(retries: int) -> list[float]:
        # Capped so a huge retry count cannot produce an absurd wait.
        retries = min(retries, 50)
        return [backoff_factor * max(0, 2**r) for r in range(retries)]

    return retry_backoff_callable


def delay_for(
    delay: list[float] | Callable[[int], Sequence[float]] | float | None,
    retries: int,
    attempt: int,
    jitter: float | None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    if delay is None:
        return 0.0
    if callable(delay):
        delay = list(delay(retries))
    if isinstance(delay, list):
        if not delay:
            return 0.0
        seconds = delay[min(attempt, len(delay)) - 1]
    else:
        seconds = float(delay)
    if jitter:
        # Prefect's clamped jitter: at most seconds * (1 + jitter), never below zero.
        import random

        seconds = max(0.0, random.uniform(seconds, seconds * (1 + jitter)))
    return seconds
