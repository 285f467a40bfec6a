"""Concurrency with ``.map()``: one task run per element of an iterable, then ``wait``.

Seed snippet: the elevator flow with ``map``, each ``time.sleep(floor)`` shortened to a hundredth.
"""

import time

from actorflow import RunRecorder, State, flow, task
from actorflow.futures import wait


@task
def stop_at_floor(floor: int):
    print(f"elevator moving to floor {floor}")
    time.sleep(floor / 100)
    print(f"elevator stops on floor {floor}")


@flow
def elevator():
    floors = list(range(10, 0, -1))
    floors = stop_at_floor.map(floors)
    wait(floors)


def main() -> list[State]:
    """Run the flow; the final states of its ten task runs, in the order they finished."""
    with RunRecorder() as recorder:
        elevator()
    return [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    states = main()
    print(f"{sum(s.is_completed() for s in states)} of {len(states)} floors completed")
