"""The same elevator flow on ``DaskTaskRunner``: task bodies run in a local Dask cluster.

Seed snippet: another task runner, chosen on the flow. Needs the ``dask`` extra
(``pip install actorflow[dask]``). The cluster starts worker processes, so the script needs its
``if __name__ == "__main__":`` guard.
"""

import time

from actorflow import RunRecorder, State, flow, task
from actorflow.futures import wait
from actorflow.task_runners import DaskTaskRunner


@task
def stop_at_floor(floor: int):
    print(f"elevator moving to floor {floor}")
    time.sleep(floor / 100)
    print(f"elevator stops on floor {floor}")


@flow(task_runner=DaskTaskRunner())
def elevator():
    floors = []
    for floor in range(10, 0, -1):
        floors.append(stop_at_floor.submit(floor))
    wait(floors)


def main() -> list[State]:
    """Run the flow; the final states of its ten task runs, in the order they finished."""
    with RunRecorder() as recorder:
        elevator()
    return [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    states = main()
    print(f"{sum(s.is_completed() for s in states)} of {len(states)} floors completed")
