"""Cache policies: what a task run's cache key is made of, and how policies combine.

``DEFAULT`` is ``INPUTS + TASK_SOURCE + RUN_ID``: the same call twice in one flow run is
Cached, and a new flow run (or an edited task) recomputes. Policies compose with ``+``, and
``policy - "arg"`` leaves an input out of the key.
"""

from ._cache._hashing import CacheKeyError as CacheKeyError
from ._cache._hashing import UnhashableInput as UnhashableInput
from ._cache._policies import DEFAULT as DEFAULT
from ._cache._policies import FLOW_PARAMETERS as FLOW_PARAMETERS
from ._cache._policies import INPUTS as INPUTS
from ._cache._policies import NO_CACHE as NO_CACHE
from ._cache._policies import NONE as NONE
from ._cache._policies import RUN_ID as RUN_ID
from ._cache._policies import TASK_SOURCE as TASK_SOURCE
from ._cache._policies import CacheKeyFnPolicy as CacheKeyFnPolicy
from ._cache._policies import CachePolicy as CachePolicy
from ._cache._policies import CompoundCachePolicy as CompoundCachePolicy
from ._cache._policies import FlowParameters as FlowParameters
from ._cache._policies import Inputs as Inputs
from ._cache._policies import KeyContext as KeyContext
from ._cache._policies import NoCache as NoCache
from ._cache._policies import RunId as RunId
from ._cache._policies import TaskSource as TaskSource
from ._cache._policies import task_input_hash as task_input_hash
from ._cache._task_cache import CacheKeyWarning as CacheKeyWarning
from ._core import fixup_module_metadata as _fixup_module_metadata

__all__ = (
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyError",
    "CacheKeyFnPolicy",
    "CacheKeyWarning",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "KeyContext",
    "NoCache",
    "RunId",
    "TaskSource",
    "UnhashableInput",
    "task_input_hash",
)

_fixup_module_metadata(__name__, globals())
