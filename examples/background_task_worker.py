"""A task worker for several tasks: runs queued with ``.delay()`` wait until ``serve`` starts.

Seed snippet: ``actorflow.task_worker.serve``. Both runs are queued first and are taken as soon as
the worker starts. Run as a script, the worker serves until stopped with Ctrl-C; ``main()`` gives
it a time limit instead.
"""

import logging

from actorflow import State, task
from actorflow.task_worker import serve


@task(log_prints=True)
def add(a: int, b: int):
    print(f"{a} + {b} = {a + b}")


@task(log_prints=True)
def multiply(a: int, b: int):
    print(f"{a} * {b} = {a * b}")


def main(serve_seconds: float = 1.0) -> list[State]:
    """Queue both runs, serve for ``serve_seconds``; the final state of each run."""
    # Both these invocations will run once the worker is started
    futures = [add.delay(1, 2), multiply.delay(1, 4)]
    serve(add, multiply, timeout=serve_seconds)
    return [future.state for future in futures]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s | %(message)s")
    # Both these invocations will run once the worker is started
    add.delay(1, 2)
    multiply.delay(1, 4)

    serve(add, multiply)
