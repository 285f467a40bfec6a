"""Failures in concurrent work: one failed run does not fail the flow; ``wait`` sorts them out.

Seed snippet: handling failures with ``wait`` and each future's ``state``.
"""

from typing import Any

from actorflow import flow, task
from actorflow.futures import wait
from actorflow.states import State


@task
def process_data(item: int) -> str:
    if item < 0:
        raise ValueError(f"Cannot process negative value: {item}")
    return f"Processed {item}"


@flow
def batch_processing():
    items = [1, -2, 3, -4, 5]

    # Submit all tasks and return the futures
    futures = process_data.map(items)

    # Wait for all futures to complete concurrently
    done, not_done = wait(futures)  # noqa: RUF059 (the seed's unpacking, kept)

    # Check each future's state
    successful: list[Any] = []
    failed: list[State] = []

    for future in done:
        if future.state.is_completed():
            successful.append(future.result())
        else:
            failed.append(future.state)

    print(f"Processed {len(successful)} items successfully")
    print(f"Failed to process {len(failed)} items")

    return successful


def main() -> State:
    """Run the flow; its final state (Completed, holding the successful results)."""
    return batch_processing(return_state=True)


if __name__ == "__main__":
    state = main()
    print(f"flow ended {state} with {sorted(state.result())}")
