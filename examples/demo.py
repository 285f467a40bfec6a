"""A tour of actorflow in one flow: submit, map, unmapped, wait_for, failures and states.

Runs on the default thread-pool runner in a fraction of a second, needs no server, and prints a
short summary. Every step has a counterpart in Prefect 3: change the imports and it runs there.
"""

from __future__ import annotations

import logging
from typing import Any

from actorflow import RunRecorder, allow_failure, flow, task, unmapped
from actorflow.futures import wait
from actorflow.states import State

READINGS = {"north": [3, 1], "south": [4, -1], "east": [5, -9]}


@task
def load(station: str) -> list[int]:
    """Fetch one station's readings."""
    return READINGS[station]


@task
def calibrate(reading: int, offsets: list[int]) -> int:
    """Shift a reading by the sum of the (shared, unmapped) offsets."""
    return reading + sum(offsets)


@task
def validate(value: int) -> int:
    """Reject negative values: these runs fail, the others go on."""
    if value < 0:
        raise ValueError(f"negative reading: {value}")
    return value


@task
def publish(values: list[int]) -> str:
    return f"published {len(values)} values, total {sum(values)}"


@task
def notify(message: str) -> str:
    return f"notified: {message}"


@flow
def pipeline(stations: list[str]) -> dict[str, Any]:
    loaded = load.map(stations)  # one run per station
    readings = [r for batch in loaded.result() for r in batch]
    calibrated = calibrate.map(readings, unmapped([1, -2]))  # the list goes whole to every run
    checked = validate.map(calibrated)  # futures as inputs: each run waits for its upstream
    not_done = wait(checked).not_done  # failures do not raise here: inspect the states
    good = [f.result() for f in checked if f.state.is_completed()]
    failed = [f.state for f in checked if f.state.is_failed()]

    report = publish.submit(good)
    # wait_for orders runs that share no data; allow_failure lets a run go on after failures.
    sent = notify.submit(report, wait_for=[allow_failure(checked)])
    # Without allow_failure, a failed upstream leaves the run NotReady: it never runs.
    skipped = notify.submit("all readings valid", wait_for=checked)
    wait([sent, skipped])
    return {
        "readings": readings,
        "calibrated": calibrated.result(),
        "valid": good,
        "failed": [str(s.result(raise_on_failure=False)) for s in failed],
        "published": report.result(),
        "notified": sent.result(),
        "skipped_state": skipped.state,
        "not_done": len(not_done),
    }


def main() -> dict[str, Any]:
    """Run the pipeline and print a summary; the flow's final state, results and run records."""
    with RunRecorder() as recorder:
        state: State[dict[str, Any]] = pipeline(["north", "south", "east"], return_state=True)
    out = state.result()
    task_runs = recorder.runs("task")
    final = {e.run_id: e.state for e in recorder.events if e.run_kind == "task"}
    counts: dict[str, int] = {}
    for s in final.values():
        counts[s.name] = counts.get(s.name, 0) + 1
    failed_run = next(r for r, s in final.items() if s.is_failed())

    print(f"readings    {out['readings']}")
    print(f"calibrated  {out['calibrated']}  (offsets [1, -2] passed unmapped)")
    print(f"valid       {out['valid']}")
    print(f"failed      {out['failed']}")
    print(f"published   {out['published']!r}")
    print(f"notified    {out['notified']!r}  (ran after failures: allow_failure)")
    print(f"skipped     {out['skipped_state'].name}  (wait_for on failed runs: never ran)")
    print(f"a failure   {' -> '.join(recorder.history(failed_run))}")
    print(f"task runs   {len(task_runs)}: {dict(sorted(counts.items()))}")
    print(f"flow        {state}")
    return {**out, "flow_state": state, "task_states": counts}


if __name__ == "__main__":
    logging.basicConfig(format="%(levelname)s %(name)s | %(message)s")
    main()
