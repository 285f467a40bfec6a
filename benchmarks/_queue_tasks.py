"""The trivial task the queue benchmark's worker process serves."""

from actorflow import task


@task(name="queue-inc")
def inc(x: int) -> int:
    return x + 1
