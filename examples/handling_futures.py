"""Futures: ``.submit()`` returns a future at once; ``future.result()`` waits for the value.

Seed snippet: handling futures.
"""

from actorflow import RunRecorder, State, flow, task


@task
def cool_task():
    return "sup"


@flow
def my_workflow():
    future = cool_task.submit()
    result = future.result()
    print(result)  # "sup"


def main() -> list[State]:
    """Run the flow; the final states of its task runs (one, whose result is "sup")."""
    with RunRecorder() as recorder:
        my_workflow()
    return [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    print(f"task states: {[str(s) for s in main()]}")
