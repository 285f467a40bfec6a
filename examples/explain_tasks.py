"""A first task: ``@task(log_prints=True)`` sends the body's ``print`` calls to the run's logger.

Seed snippet: defining a task. Calling the task runs it right here and records its states.
"""

import logging

from actorflow import State, task


@task(log_prints=True)
def explain_tasks():
    print("run any python code here!")
    print("but maybe just a little bit")


def main() -> State:
    """Call the task once; its final state."""
    return explain_tasks(return_state=True)


if __name__ == "__main__":
    # actorflow leaves logging configuration to the application: show the run logs on stderr.
    logging.basicConfig(level=logging.INFO, format="%(name)s | %(message)s")
    print(f"explain_tasks ended {main()}")
