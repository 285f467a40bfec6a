"""The async elevator on trio: the same task and flow model, with a nursery instead of gather.

Not in the seed: it shows that actorflow's async flows run natively on trio as well as asyncio.
"""

import trio

from actorflow import RunRecorder, State, flow, task


@task
async def stop_at_floor(floor: int):
    print(f"elevator moving to floor {floor}")
    await trio.sleep(floor / 100)
    print(f"elevator stops on floor {floor}")


@flow
async def elevator():
    floors = list(range(10, 0, -1))
    async with trio.open_nursery() as nursery:
        for floor in floors:
            nursery.start_soon(stop_at_floor, floor)


def main() -> list[State]:
    """Run the flow with ``trio.run``; the final states of its ten task runs."""
    with RunRecorder() as recorder:
        trio.run(elevator)
    return [e.state for e in recorder.events if e.run_kind == "task" and e.state.is_final()]


if __name__ == "__main__":
    states = main()
    print(f"{sum(s.is_completed() for s in states)} of {len(states)} floors completed")
