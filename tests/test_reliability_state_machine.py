"""Random flows of submits, cancels, retries and timeouts (hypothesis): every recorded transition
of every run is in the transition table of ``_core/_states.py``, and no run reaches two final
states. Retry delays run on a virtual clock; timeouts are short real ones."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorflow import RunRecorder, flow, task
from actorflow._core import StateType, VirtualClock, use_clock
from actorflow._core._states import _ALLOWED
from actorflow.task_runners import ThreadPoolTaskRunner

TIMEOUT = 0.02


@attrs.frozen
class Plan:
    """One task run of a random flow."""

    is_async: bool
    outcomes: tuple[str, ...]  # per attempt: "ok", "raise" or "hang"; the last one repeats
    retries: int
    delay: float
    timeout: float | None
    cancel: str | None  # None, "at once" (just submitted) or "after start"
    upstream: int | None  # the index of an earlier run whose future is its argument


@st.composite
def plans(draw: st.DrawFn) -> list[Plan]:
    count = draw(st.integers(1, 6))
    out: list[Plan] = []
    for i in range(count):
        is_async = draw(st.booleans())
        timeout = draw(st.sampled_from([None, TIMEOUT]))
        upstream = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        cancel = draw(st.sampled_from([None, "at once", "after start"]))
        if upstream is not None and cancel == "after start":
            cancel = "at once"  # it may never start: do not wait for it to
        outcomes = draw(st.lists(st.sampled_from(["ok", "raise", "hang"]), min_size=1, max_size=3))
        # A body that hangs must be ended by something: its deadline, or (async) a cancel.
        ends_hang = timeout is not None or (is_async and cancel == "after start")
        outcomes = [o if o != "hang" or ends_hang else "raise" for o in outcomes]
        if cancel == "after start" and not is_async and outcomes[0] == "hang" and not timeout:
            outcomes[0] = "raise"  # pragma: no cover - excluded above
        out.append(
            Plan(
                is_async=is_async,
                outcomes=tuple(outcomes),
                retries=draw(st.integers(0, 2)),
                delay=draw(st.sampled_from([0.0, 5.0])),
                timeout=timeout,
                cancel=cancel,
                upstream=upstream,
            )
        )
    return out


def check_transitions(recorder: RunRecorder) -> dict[str, list[Any]]:
    """Every run's recorded transitions, checked against the table; its states, by run id."""
    states: dict[str, list[Any]] = {}
    for event in recorder.events:
        seen = states.setdefault(event.run_id, [])
        previous = seen[-1] if seen else None
        assert event.from_state == (previous.name if previous else None), (event, previous)
        allowed = _ALLOWED[previous.type if previous else None]
        assert event.state.type in allowed, f"{previous} -> {event.state} is not allowed"
        seen.append(event.state)
    for run_id, seen in states.items():
        finals = [s for s in seen if s.is_final()]
        assert len(finals) <= 1, (run_id, seen)
        if finals:
            assert seen[-1] is finals[0], (run_id, seen)
    return states


def make_tasks(plan: list[Plan], started: list[threading.Event]) -> list[Any]:
    made = []
    for i, p in enumerate(plan):
        attempts = [0]

        def outcome(i: int = i, p: Plan = p, attempts: list[int] = attempts) -> str:
            started[i].set()
            attempts[0] += 1
            return p.outcomes[min(attempts[0], len(p.outcomes)) - 1]

        options: dict[str, Any] = {
            "name": f"t{i}",
            "retries": p.retries,
            "retry_delay_seconds": p.delay,
            "timeout_seconds": p.timeout,
        }
        if p.is_async:

            async def body(x: int = 0, outcome: Any = outcome) -> int:
                what = outcome()
                if what == "hang":
                    await anyio.sleep_forever()
                if what == "raise":
                    raise ValueError("planned failure")
                return x + 1

        else:

            def body(x: int = 0, outcome: Any = outcome) -> int:  # type: ignore[misc]
                what = outcome()
                if what == "hang":  # in short sleeps: the deadline interrupts between them
                    for _ in range(1000):
                        time.sleep(0.002)
                if what == "raise":
                    raise ValueError("planned failure")
                return x + 1

        made.append(task(body, **options))
    return made


def check_runs(plan: list[Plan], futures: list[Any], cancelled: dict[int, bool]) -> None:
    for i, (p, future) in enumerate(zip(plan, futures, strict=True)):
        state = future.state
        history = future.task_run.history()
        attempts = sum(1 for s in history if s.type is StateType.RUNNING)
        assert attempts <= p.retries + 1, history
        if cancelled.get(i):  # cancel() said yes: it is Cancelled
            assert state.is_cancelled(), history
        elif i in cancelled:  # cancel() said no: it ended by its own outcome
            assert not state.is_cancelled(), history
        if state.type is StateType.PENDING:  # NotReady: an upstream run did not complete
            assert p.upstream is not None and not futures[p.upstream].state.is_completed()
        else:
            assert state.is_final(), history
        if state.is_completed():
            assert "ok" in p.outcomes


def run_sync(plan: list[Plan]) -> None:
    started = [threading.Event() for _ in plan]
    tasks = make_tasks(plan, started)
    cancelled: dict[int, bool] = {}

    futures: list[Any] = []  # not returned: a flow returns its futures as their states

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def host() -> None:
        for i, p in enumerate(plan):
            args = () if p.upstream is None else (futures[p.upstream],)
            futures.append(tasks[i].submit(*args))
            if p.cancel == "at once":
                cancelled[i] = futures[i].cancel()
        for i, p in enumerate(plan):
            if p.cancel == "after start":
                assert started[i].wait(10)
                cancelled[i] = futures[i].cancel()
        for future in futures:
            future.wait()

    with RunRecorder() as recorder, use_clock(VirtualClock()):
        host()
    check_transitions(recorder)
    check_runs(plan, futures, cancelled)


def run_async(plan: list[Plan], backend: str) -> None:
    started = [threading.Event() for _ in plan]
    tasks = make_tasks(plan, started)
    cancelled: dict[int, bool] = {}

    futures: list[Any] = []  # not returned: a flow returns its futures as their states

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    async def host() -> None:
        for i, p in enumerate(plan):
            args = () if p.upstream is None else (futures[p.upstream],)
            futures.append(tasks[i].submit(*args))
            if p.cancel == "at once":
                cancelled[i] = futures[i].cancel()
        for i, p in enumerate(plan):
            if p.cancel == "after start":
                with anyio.fail_after(10):
                    while not started[i].is_set():  # noqa: ASYNC110  # set on other threads too
                        await anyio.sleep(0.001)
                cancelled[i] = futures[i].cancel()
        for future in futures:
            await future.wait_async()

    async def main() -> None:
        with use_clock(VirtualClock()):
            await host()

    with RunRecorder() as recorder:
        anyio.run(main, backend=backend)
    check_transitions(recorder)
    check_runs(plan, futures, cancelled)


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@SETTINGS
@given(plans())
def test_random_sync_flows_make_only_allowed_transitions(plan: list[Plan]) -> None:
    run_sync(plan)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_random_async_flows_make_only_allowed_transitions(backend: str) -> None:
    @SETTINGS
    @given(plans())
    def check(plan: list[Plan]) -> None:
        run_async(plan, backend)

    check()


def test_cancel_says_true_only_if_the_run_ends_cancelled() -> None:
    # An async task of a sync flow runs on the runtime loop: its Cancel lands there at the
    # loop's next turn, and the run may end by itself before that. cancel() asks the loop.
    @task(retries=2, retry_delay_seconds=5)
    async def fails() -> None:
        raise ValueError("planned failure")

    answers: list[tuple[bool, str]] = []

    @flow
    def host() -> None:
        for _ in range(500):
            future = fails.submit()
            if _ % 2:
                future.task_run.history()  # a little later, sometimes mid-run
            answers.append((future.cancel(), ""))
            future.wait()
            answers[-1] = (answers[-1][0], future.state.name)

    with use_clock(VirtualClock()):
        host()
    wrong = [a for a in answers if a[0] != (a[1] == "Cancelled")]
    assert not wrong, wrong
