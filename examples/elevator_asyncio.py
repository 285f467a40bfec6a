"""Async tasks: called directly they give coroutines, which ``asyncio.gather`` runs together.

Seed snippet: the elevator with asyncio; each ``asyncio.sleep(floor)`` shortened to a hundredth.
See ``elevator_trio.py`` for the same flow on trio.
"""

import asyncio

from actorflow import RunRecorder, State, flow, task


@task
async def stop_at_floor(floor: int):
    print(f"elevator moving to floor {floor}")
    await asyncio.sleep(floor / 100)
    print(f"elevator stops on floor {floor}")


@flow
async def elevator():
    floors = list(range(10, 0, -1))
    await asyncio.gather(*[stop_at_floor(floor) for floor in floors])


def main() -> list[State]:
    """Run the flow with ``asyncio.run``; the final states of its ten task runs."""
    with RunRecorder() as recorder:
        asyncio.run(elevator())
    return [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    states = main()
    print(f"{sum(s.is_completed() for s in states)} of {len(states)} floors completed")
