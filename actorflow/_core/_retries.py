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


def check_retry_options(
    owner: str, retries: int | None, delay: RetryDelay, jitter: float | None
) -> list[float] | Callable[[int], Sequence[float]] | float | None:
    """Validate retry options at decoration time; errors name the task or flow."""
    if retries is not None and retries < 0:
        raise ValueError(f"{owner}: retries must be >= 0, got {retries}")
    if jitter is not None and jitter < 0:
        raise ValueError(f"{owner}: `retry_jitter_factor` must be >= 0, got {jitter}")
    if isinstance(delay, Sequence) and not isinstance(delay, str):
        if len(delay) > 50:
            raise ValueError(
                f"{owner}: Can not configure more than 50 retry delays per task, got {len(delay)}"
            )
        return [float(d) for d in delay]
    return delay  # type: ignore[return-value]


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
