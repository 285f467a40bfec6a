"""Result persistence and the default cache policy: a repeated call in one flow run is Cached.

Seed snippet: ``persist_result=True``. The default policy keys a result on the task's inputs, its
source and the flow run, so the second ``add_one(1)`` reuses the first one's result. Results are
stored under ``$ACTORFLOW_HOME`` (by default ``~/.actorflow``).
"""

from actorflow import RunRecorder, flow, task


@task(persist_result=True)
def add_one(x: int):
    return x + 1


@flow
def my_flow():
    add_one(1)  # will not be cached
    add_one(1)  # will be cached
    add_one(2)  # will not be cached


def main() -> list[str]:
    """Run the flow; the final state name of each ``add_one`` run, in call order."""
    with RunRecorder() as recorder:
        my_flow()
    return [e.state.name for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    print(main())  # ['Completed', 'Cached', 'Completed']
