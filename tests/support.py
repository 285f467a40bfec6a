"""Helpers shared by tests that start other processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import actorflow

#: The folder holding the actorflow package this test process imported.
ACTORFLOW_ROOT = str(Path(actorflow.__file__).resolve().parent.parent)


def child_env(*paths: str | os.PathLike[str], **variables: str) -> dict[str, str]:
    """An environment in which a child process imports the same actorflow as this process
    (and modules from ``paths``), with ``variables`` set."""
    path = os.pathsep.join([*map(os.fspath, paths), ACTORFLOW_ROOT])
    return {**os.environ, "PYTHONPATH": path, **variables}


def run_python(
    code: str, *, cwd: str | os.PathLike[str] | None = None, timeout: float = 60, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in a child process that imports this actorflow."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=child_env(*([cwd] if cwd else []), **variables),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


#: The Redis that `.ci/run` makes sure runs on loopback.
REDIS_URL = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def isolated_queue(broker: str, monkeypatch: pytest.MonkeyPatch, **settings: str) -> Iterator[str]:
    """The background queue on ``broker`` ("sqlite" or "redis") for one test, in a namespace of
    its own (the SQLite file lives in the test's ACTORFLOW_HOME), with queue ``settings`` as
    environment variables; the queue's clients are reset and its Redis keys deleted after."""
    from actorflow._queue import reset

    namespace = f"test-{uuid.uuid4().hex}"
    if broker == "redis":
        monkeypatch.setenv("ACTORFLOW_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("ACTORFLOW_QUEUE_NAMESPACE", namespace)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    try:
        yield broker
    finally:
        reset()
        if broker == "redis":
            import redis

            r = redis.Redis.from_url(REDIS_URL)
            keys = list(r.scan_iter(match=f"af:{{{namespace}}}:*", count=1000))
            if keys:
                r.delete(*keys)
            r.close()
