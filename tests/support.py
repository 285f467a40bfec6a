"""Helpers shared by tests that start other processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
