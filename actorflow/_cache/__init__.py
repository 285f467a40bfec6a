"""Result persistence and caching (policies, keys, records, storage)."""

from __future__ import annotations

from typing import Any


def build_cache(task: Any) -> Any:
    """The cache a task's runs consult, or ``None`` when its results are not persisted."""
    return None
