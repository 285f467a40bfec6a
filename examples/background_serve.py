"""Background tasks: ``add.serve()`` runs a worker for the task; ``add.delay(...)`` queues a run.

Seed snippet: ``.serve()`` and ``.delay()``. They usually live in different processes, so this
script plays both parts. Run a worker with ``python examples/background_serve.py serve`` (it
blocks; stop it with Ctrl-C) and queue runs from anywhere else with ``add.delay(1, 2)``. Running
the script without arguments starts a worker in a child process, queues one run and waits for it.
Queued runs start in the Scheduled state and wait there until a worker takes them.
"""

import logging
import subprocess
import sys

from actorflow import State, task


@task(log_prints=True)
def add(a: int, b: int):
    print(f"{a} + {b} = {a + b}")


def main(timeout: float = 30.0) -> State:
    """Start a worker process, queue ``add(1, 2)`` and wait for it; the run's final state."""
    worker = subprocess.Popen([sys.executable, __file__, "serve"])
    try:
        future = add.delay(1, 2)
        future.wait(timeout)
        return future.state
    finally:
        worker.terminate()
        worker.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s | %(message)s")
    if sys.argv[1:] == ["serve"]:
        add.serve()
    else:
        print(f"add(1, 2) ended {main()}")
