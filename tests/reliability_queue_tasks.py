"""Tasks for the queue's reliability tests, importable by worker processes as
``reliability_queue_tasks``. Each body appends one line to a log file as it completes (a single
``write`` on a file opened for appending: lines of several processes never interleave), so a
test counts the bodies that ran to the end, per run and per process."""

from __future__ import annotations

import os
import time

from actorflow import task


def _note(log: str, line: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@task
def square(i: int, log: str) -> int:
    """Takes 20 ms, then notes ``i`` and its process."""
    time.sleep(0.02)
    _note(log, f"{i} {os.getpid()}")
    return i * i


@task
def whose(log: str, seconds: float) -> int:
    """Notes that it started, takes ``seconds``, notes that it ended: returns its process id."""
    _note(log, f"started {os.getpid()}")
    time.sleep(seconds)
    _note(log, f"ended {os.getpid()}")
    return os.getpid()
