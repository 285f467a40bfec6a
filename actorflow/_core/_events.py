"""The record an observer of runs is handed: made by the first transition observed (a sink, such
as the journal's, takes the transition's parts instead)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from ._states import State

__all__ = ["TransitionEvent"]


@attrs.frozen
class TransitionEvent:
    """One recorded transition of a task or flow run."""

    run_id: str
    run_kind: str  # "task" or "flow"
    run_name: str
    task_key: str | None
    parent_id: str | None
    flow_run_id: str | None
    from_state: str | None
    state: State[Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the state's data is left out: results are not journal material)."""
        return {
            "run_id": self.run_id,
            "run_kind": self.run_kind,
            "run_name": self.run_name,
            "task_key": self.task_key,
            "parent_id": self.parent_id,
            "flow_run_id": self.flow_run_id,
            "from_state": self.from_state,
            "state_type": self.state.type.value,
            "state_name": self.state.name,
            "timestamp_ns": self.state.timestamp_ns,
            "message": self.state.message,
        }
