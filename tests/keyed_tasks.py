"""A task defined in its own module, imported by subprocesses to check task_key stability."""

from actorflow import task


@task
def keyed(x: int) -> int:
    return x * 2
