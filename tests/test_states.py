"""The state machine: the transition table, recorded history, and State values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorflow._core import _states
from actorflow._core._actor import Actor
from actorflow._core._specs import RunSpec
from actorflow.exceptions import CancelledRun, CrashedRun, InvalidStateTransition, UnfinishedRun
from actorflow.states import Cancelled, Completed, Crashed, Failed, Pending, State, StateType

KINDS = [
    _states.SCHEDULED, _states.LATE, _states.AWAITING_RETRY, _states.PENDING, _states.NOT_READY,
    _states.RUNNING, _states.RETRYING, _states.COMPLETED, _states.CACHED, _states.FAILED,
    _states.TIMED_OUT, _states.CANCELLING, _states.CANCELLED, _states.CRASHED, _states.PAUSED,
]  # fmt: skip


PROBE = RunSpec(name="probe", fn=print, is_async=False, owner=None, bind=dict)


class Probe(Actor):
    __slots__ = ()

    @property
    def name(self) -> str:
        return "probe"


@given(st.lists(st.sampled_from(KINDS), max_size=12))
def test_any_sequence_is_accepted_exactly_when_the_table_allows_it(
    sequence: list[_states.StateKind],
) -> None:
    actor = Probe(PROBE, (), {}, None)
    accepted: list[str] = []
    previous: _states.StateKind | None = None
    for kind in sequence:
        allowed = kind.type in _states._ALLOWED[None if previous is None else previous.type]
        if allowed:
            actor.transition(kind)
            accepted.append(kind.name)
            previous = kind
        else:
            with pytest.raises(InvalidStateTransition, match="probe"):
                actor.transition(kind)
    assert [s.name for s in actor.history()] == accepted
    assert actor.done() == (previous is not None and previous.final)


def test_final_states_lead_nowhere() -> None:
    actor = Probe(PROBE, (), {}, None)
    actor.transition(_states.PENDING)
    actor.transition(_states.RUNNING)
    actor.transition(_states.COMPLETED, data=1)
    with pytest.raises(InvalidStateTransition, match="cannot move from Completed to Running"):
        actor.transition(_states.RUNNING)
    assert actor.state.result() == 1


def test_history_timestamps_do_not_go_backwards() -> None:
    actor = Probe(PROBE, (), {}, None)
    for kind in (_states.PENDING, _states.RUNNING, _states.RETRYING, _states.COMPLETED):
        actor.transition(kind)
    stamps = [s.timestamp_ns for s in actor.history()]
    assert stamps == sorted(stamps)
    assert actor.history()[0].timestamp.year >= 2024


def test_named_states_and_helpers() -> None:
    from actorflow import states

    assert states.Cached().type is StateType.COMPLETED and states.Cached().is_completed()
    assert states.TimedOut().is_failed() and states.TimedOut().name == "TimedOut"
    assert states.AwaitingRetry().is_scheduled()
    assert states.Retrying().is_running()
    assert states.NotReady().is_pending()
    assert states.Cancelling().is_cancelling() and not states.Cancelling().is_final()
    assert states.Paused().is_paused()
    assert str(Completed()) == "Completed()"
    assert str(states.Cached(message="hit")) == "Cached('hit', type=COMPLETED)"


def test_result_of_each_kind() -> None:
    assert Completed(data=5).result() == 5
    with pytest.raises(UnfinishedRun, match="Run is in PENDING state"):
        Pending().result()
    with pytest.raises(CancelledRun):
        Cancelled().result()
    with pytest.raises(CrashedRun, match=r"Run crashed\."):
        Crashed().result()
    error = ValueError("x")
    assert Failed(data=error).result(raise_on_failure=False) is error
    with pytest.raises(ValueError, match="x"):
        Failed(data=error).result()


def test_state_is_immutable() -> None:
    state: State[int] = Completed(data=1)
    with pytest.raises(AttributeError):
        state.name = "Other"  # type: ignore[misc]
