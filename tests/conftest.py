from __future__ import annotations

import threading
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
    """Fail if a test leaves task threads of its own behind (runtime threads are shared)."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith("actorflow-task") and t.is_alive()
    ]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"
