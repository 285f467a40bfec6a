"""Tasks for the reliability tests that worker processes import by name (a spawned worker
unpickles a task function by its module and name)."""

from __future__ import annotations

import time
from pathlib import Path

from actorflow import task


@task
def mark_and_sleep(folder: str, i: int, seconds: float) -> int:
    """Leave a file named ``i`` in ``folder`` (the body started), then sleep."""
    (Path(folder) / str(i)).touch()
    time.sleep(seconds)
    return i
