"""Tasks for tests/test_task_runners.py, in a module of their own: worker processes (spawned,
or Dask's) import it by name to unpickle the task functions."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from actorflow import get_run_logger, task


def _count(path: str) -> int:
    """Add one to the attempt counter in ``path`` (a file shared with the worker processes)."""
    counter = Path(path)
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


@task
def add(x: int, y: int = 0) -> int:
    return x + y


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task(retries=2)
def flaky(counter: str, failures: int) -> int:
    attempt = _count(counter)
    if attempt <= failures:
        raise RuntimeError(f"attempt {attempt} failed")
    return attempt


@task(retries=3)
def retried_wrongly_called(counter: str) -> None:
    _count(counter)


@task
def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


@task(timeout_seconds=0.5)
def wait_for_file(path: str, limit: float) -> str:
    """Poll for ``path``: a body that outlives its timeout until the test releases it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return "released"
        time.sleep(0.02)
    return "gave up"


@task(timeout_seconds=1.5)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def logger_name() -> str:
    return str(get_run_logger().extra["run_name"])  # type: ignore[index]


@task
def process_id(tag: int) -> int:
    return os.getpid() if tag >= 0 else 0


@task
def takes(value: Any) -> str:
    return type(value).__name__


@task
def returns_lock() -> Any:
    return threading.Lock()


@task
def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@task(retries=1)
def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).write_text("died here")
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


@task(cache_key_fn=lambda context, parameters: f"runner-test-{parameters['token']}")
def cached_token(token: str) -> str:
    return f"{token}-{os.getpid()}-{time.monotonic_ns()}"
