"""Tasks for the background-task tests, importable by worker processes as ``background_tasks``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from actorflow import task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def multiply(a: int, b: int) -> int:
    return a * b


@task
def fail(message: str) -> None:
    raise ValueError(message)


@task
def other(x: int) -> int:
    return x


@task(retries=2)
def flaky(marker: str) -> str:
    """Fails on its first attempt (recorded in ``marker``), then succeeds."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("1")
        raise RuntimeError("first attempt fails")
    return "retried"


@task
def until_killed(marker: str) -> str:
    """First delivery: announce itself in ``marker``, then hang (the test kills the worker).
    A later delivery finds the marker and returns."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        threading.Event().wait(120)
        return "first"
    return "second"


@task
def slow(marker: str, seconds: float) -> str:
    """Announce itself in ``marker``, then take ``seconds``."""
    with open(marker, "a") as f:
        f.write("started\n")
    time.sleep(seconds)
    return "done"


_lock = threading.Lock()
concurrency: dict[str, Any] = {"now": 0, "peak": 0}


@task
def counted(seconds: float) -> None:
    with _lock:
        concurrency["now"] += 1
        concurrency["peak"] = max(concurrency["peak"], concurrency["now"])
    time.sleep(seconds)
    with _lock:
        concurrency["now"] -= 1
