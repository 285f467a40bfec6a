"""Waiting without taking results: ``wait(futures)`` for many, ``future.wait()`` for one.

Seed snippet: waiting for futures to complete.
"""

from actorflow import RunRecorder, State, flow, task
from actorflow.futures import wait


@task
def cool_task():
    return "sup"


@flow
def my_workflow_multiple():
    futures = [cool_task.submit() for _ in range(10)]
    wait(futures)


@flow
def my_workflow_single():
    future = cool_task.submit()
    future.wait()


def main() -> dict[str, list[State]]:
    """Run both flows; the final states of each flow's task runs, by flow name."""
    out: dict[str, list[State]] = {}
    for flow_fn in (my_workflow_multiple, my_workflow_single):
        with RunRecorder() as recorder:
            flow_fn()
        out[flow_fn.name] = [
            e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()
        ]
    return out


if __name__ == "__main__":
    for name, states in main().items():
        print(f"{name}: {sum(s.is_completed() for s in states)} task runs completed")
