"""A cache policy with an expiration: ``INPUTS`` reuses results for equal inputs until they expire.

Seed snippet: ``cache_policy=INPUTS`` with ``cache_expiration``. Every duration is a hundredth of
the original (10 s becomes 0.1 s), including the wait that lets the cached result expire.
"""

import time
from datetime import timedelta

from actorflow import RunRecorder, task
from actorflow.cache_policies import INPUTS


@task(cache_policy=INPUTS, cache_expiration=timedelta(seconds=10 / 100))
def my_stateful_task(x: int):
    print("sleeping")
    time.sleep(10 / 100)
    return x + 1


def main() -> list[str]:
    """Make the three calls; the final state name of each, in call order."""
    with RunRecorder() as recorder:
        my_stateful_task(x=1)  # sleeps
        my_stateful_task(x=1)  # does not sleep
        time.sleep(10 / 100)  # ... 10 seconds pass ...
        my_stateful_task(x=1)  # sleeps again
    return [e.state.name for e in recorder.events if e.state.is_final()]


if __name__ == "__main__":
    print(main())  # ['Completed', 'Cached', 'Completed']
