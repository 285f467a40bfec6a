"""Tasks for tests/test_transactions.py, in a module of their own: worker processes (spawned,
or Dask's) import it by name to unpickle the task functions. Their hooks run in the test's
process (staging and commit stay with the supervisor) and record what they saw in ``EVENTS``."""

from __future__ import annotations

from typing import Any

from actorflow import task

EVENTS: list[str] = []


def _key(context: Any, parameters: dict[str, Any]) -> str:
    return f"produce-{parameters['x']}"


@task(cache_key_fn=_key)
def produce(x: int) -> int:
    return x * 10


@produce.on_rollback
def _undo(txn: Any) -> None:
    EVENTS.append(f"rollback {txn.key}")


@produce.on_commit
def _done(txn: Any) -> None:
    EVENTS.append(f"commit {txn.key}")


@task
def explode(x: int) -> int:
    raise ValueError(f"bad {x}")
