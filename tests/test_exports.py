"""Public modules re-export exactly what their ``__all__`` lists, under their public names."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = [
    "actorflow",
    "actorflow.futures",
    "actorflow.states",
    "actorflow.exceptions",
    "actorflow.task_runners",
    "actorflow.testing",
    "actorflow.runs",
    "actorflow.journal",
    "actorflow.cache_policies",
    "actorflow.results",
    "actorflow.context",
    "actorflow.logging",
    "actorflow.tasks",
    "actorflow.flows",
    "actorflow.runtime",
    "actorflow.utilities.annotations",
    "actorflow.transactions",
    "actorflow.locking.memory",
    "actorflow.utilities.asyncutils",
    "actorflow.task_worker",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_lists_existing_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
    public = {a for a in vars(module) if not a.startswith("_")}
    missing = {
        a
        for a in public
        if getattr(getattr(module, a), "__module__", "").startswith("actorflow._")
        and a not in module.__all__
    }
    assert not missing, f"{name} exports {missing} without listing them in __all__"


@pytest.mark.parametrize(
    ("path", "public_module"),
    [
        ("actorflow.futures.TaskFuture", "actorflow.futures"),
        ("actorflow.futures.TaskFutureList", "actorflow.futures"),
        ("actorflow.states.State", "actorflow.states"),
        ("actorflow.states.StateType", "actorflow.states"),
        ("actorflow.task_runners.ThreadPoolTaskRunner", "actorflow.task_runners"),
        ("actorflow.exceptions.CancelledRun", "actorflow.exceptions"),
        ("actorflow.Task", "actorflow"),
        ("actorflow.Flow", "actorflow"),
        ("actorflow.futures.BackgroundTaskFuture", "actorflow.futures"),
        ("actorflow.task_worker.TaskWorker", "actorflow.task_worker"),
    ],
)
def test_classes_report_their_public_module(path: str, public_module: str) -> None:
    module_name, _, attr = path.rpartition(".")
    obj = getattr(importlib.import_module(module_name), attr)
    assert obj.__module__ == public_module
