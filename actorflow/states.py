"""Run states: ``State``, ``StateType`` and a constructor per named state."""

from ._core import AwaitingConcurrencySlot as AwaitingConcurrencySlot
from ._core import AwaitingRetry as AwaitingRetry
from ._core import Cached as Cached
from ._core import Cancelled as Cancelled
from ._core import Cancelling as Cancelling
from ._core import Completed as Completed
from ._core import Crashed as Crashed
from ._core import Failed as Failed
from ._core import Late as Late
from ._core import NotReady as NotReady
from ._core import Paused as Paused
from ._core import Pending as Pending
from ._core import Retrying as Retrying
from ._core import Running as Running
from ._core import Scheduled as Scheduled
from ._core import State as State
from ._core import StateType as StateType
from ._core import Suspended as Suspended
from ._core import TimedOut as TimedOut
from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import raise_state_exception as raise_state_exception

__all__ = (
    "AwaitingConcurrencySlot",
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "NotReady",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateType",
    "Suspended",
    "TimedOut",
    "raise_state_exception",
)

_fixup_module_metadata(__name__, globals())
