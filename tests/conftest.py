from __future__ import annotations

import os

# The suite's runs are not journaled to a file (tests that need a journal enable one); set
# before actorflow is imported, since the setting is read then.
os.environ["ACTORFLOW_JOURNAL"] = "off"

import threading
import time
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs on both backends."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Results persisted by tests go to a temporary ACTORFLOW_HOME, never to ~/.actorflow."""
    monkeypatch.setenv("ACTORFLOW_HOME", str(tmp_path_factory.mktemp("actorflow-home")))


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail if a test leaves a thread working for a flow's task pool.

    Worker threads are shared and outlive flows, parked; while one works for a pool it bears the
    pool's name, and it drops that name just after the pool's last work item."""
    yield
    deadline = time.monotonic() + 2
    while True:
        busy = [
            t.name
            for t in threading.enumerate()
            if t.name.startswith("actorflow-task") and t.is_alive()
        ]
        if not busy or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not busy, f"threads left working: {busy}"
