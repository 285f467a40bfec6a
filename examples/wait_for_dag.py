"""``wait_for``: order task runs that share no data, drawing a small DAG (a, b -> c -> d).

Seed snippet: dependencies with ``wait_for``. ``task_d`` is called directly, yet still waits.
"""

from actorflow import RunRecorder, flow, task


@task
def task_a():
    pass


@task
def task_b():
    pass


@task
def task_c():
    pass


@task
def task_d():
    pass


@flow
def my_flow():
    a = task_a.submit()
    b = task_b.submit()
    # Wait for task_a and task_b to complete
    c = task_c.submit(wait_for=[a, b])
    # task_d will wait for task_c to complete
    # Note: If waiting for one task it must still be in a list.
    d = task_d(wait_for=[c])  # noqa: F841 (kept from the seed)


def main() -> list[tuple[str, str]]:
    """Run the flow; every task run transition in the order it happened, as (task, state)."""
    with RunRecorder() as recorder:
        my_flow()
    return [
        (e.run_name.rsplit("-", 1)[0], e.state.name)
        for e in recorder.events
        if e.run_kind == "task"
    ]


if __name__ == "__main__":
    for task_name, state_name in main():
        print(f"{task_name:>7} {state_name}")
