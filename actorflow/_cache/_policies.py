"""Cache policies: what a task run's cache key is made of.

A policy turns a run (its inputs, its task's source, its flow run) into key text; policies
compose with ``+`` and ``policy - "arg"`` leaves an input out. Each built-in policy produces
*text*, and the task's cache hashes the text once, so a composed policy costs one hash, not one
per part. Custom policies subclass :class:`CachePolicy` and implement :meth:`compute_key`, as
in Prefect.

Unlike Prefect, a part that fails never narrows the key silently: an input that cannot be
hashed stably raises :class:`UnhashableInput` naming the argument, and any other error in a
policy fails the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, final

import attrs

from ._hashing import DECIMAL_BITS, REPR_SAFE, UnhashableInput, canonical, digest_bytes, digest_text

if TYPE_CHECKING:
    from .._core import FlowRun, TaskRun

# The public names are listed once, by actorflow.cache_policies.


@final
class KeyContext:
    """What a policy or ``cache_key_fn`` sees of the run: its task, the run, its parameters."""

    __slots__ = ("flow_run", "parameters", "task", "task_run")

    def __init__(self, task: Any, task_run: TaskRun, parameters: dict[str, Any]) -> None:
        self.task = task
        self.task_run = task_run
        self.parameters = parameters
        self.flow_run: FlowRun | None = task_run.flow  # type: ignore[assignment]  # it is one

    def __repr__(self) -> str:
        return f"KeyContext(task={self.task!r}, task_run={self.task_run.name!r})"


class CachePolicy:
    """Base of every policy. Subclasses implement :meth:`compute_key`."""

    #: Whether :meth:`compute_key` reads ``flow_parameters`` (binding them costs per run).
    needs_flow_parameters = True
    #: Whether the key names the run that owns the task run (``RUN_ID``): its records cannot be
    #: hit once that run has ended, so they are not kept in memory beyond it.
    keys_on_run = False
    #: Where this policy's records are kept, overriding the task's ``result_storage`` (a path
    #: or a storage); set with :meth:`configure`.
    key_storage: Any = None
    #: Kept for the transactions a cached run opens: the lock manager and isolation level.
    lock_manager: Any = None
    isolation_level: Any = None
    #: Whether :meth:`compute_key` hashes the :meth:`key_text` of a policy that implements it.
    digests_key_text: ClassVar[bool] = False

    def configure(
        self,
        key_storage: Any = None,
        lock_manager: Any = None,
        isolation_level: Any = None,
    ) -> CachePolicy:
        """A copy of this policy with its records kept in ``key_storage`` (a folder or a
        storage) and, for the transactions of its runs, a lock manager and isolation level.
        Options not given keep this policy's."""
        import copy

        configured = copy.copy(self)
        for name, value in (
            ("key_storage", key_storage),
            ("lock_manager", lock_manager),
            ("isolation_level", isolation_level),
        ):
            if value is not None:
                object.__setattr__(configured, name, value)  # frozen subclasses too
        return configured

    def compute_key(
        self,
        task_ctx: KeyContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        """The key for this run, or ``None`` for no key (the run is not cached)."""
        # Built-in policies implement key_text instead, and hash it here if they digest it.
        if type(self).key_text is CachePolicy.key_text:
            raise NotImplementedError(f"{type(self).__name__} must implement compute_key()")
        text = self.key_text(task_ctx, inputs, flow_parameters)
        return text if text is None or not self.digests_key_text else digest_text(text)

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        """The key before hashing. Built-in policies return readable text; others their key."""
        key = self.compute_key(task_ctx, inputs, flow_parameters)
        if key is not None and not isinstance(key, str):
            raise TypeError(
                f"{type(self).__name__}.compute_key() must return a str or None, "
                f"got {type(key).__name__}"
            )
        return key

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, NoCache):
            return self
        return _carry(CompoundCachePolicy(policies=(self, other)), self, other)

    def __sub__(self, other: str) -> CachePolicy:
        # Only policies that hash inputs have anything to leave out.
        _check_name(other)
        return self


def _carry(policy: CachePolicy, *sources: CachePolicy) -> CachePolicy:
    """``policy`` with the :meth:`~CachePolicy.configure` settings of ``sources`` (the first
    one set wins), so that combining configured policies keeps their settings."""
    settings = {
        name: next((v for s in sources if (v := getattr(s, name)) is not None), None)
        for name in ("key_storage", "lock_manager", "isolation_level")
    }
    return policy.configure(**settings) if any(v is not None for v in settings.values()) else policy


def _check_name(other: Any) -> None:
    if not isinstance(other, str):
        raise TypeError("Can only subtract strings from key policies.")


class _Builtin(CachePolicy):
    """A built-in policy: key text first, one hash at the end."""

    needs_flow_parameters = False
    digests_key_text = True

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        raise NotImplementedError


def _value_text(name: str, value: Any) -> str:
    kind = type(value)
    if kind in REPR_SAFE and (kind is not int or value.bit_length() < DECIMAL_BITS):
        return f"{name}={value!r}"
    return f"{name}#{digest_bytes(canonical(value))}"


def _values_text(kind: str, values: dict[str, Any], exclude: Iterable[str] = ()) -> str:
    parts = []
    for name, value in values.items():
        if name in exclude:
            continue
        try:
            parts.append(_value_text(name, value))
        except UnhashableInput as exc:
            exc.argument = name  # type: ignore[attr-defined]  # annotating the exception for the caller's message
            exc.kind = kind  # type: ignore[attr-defined]  # annotating the exception for the caller's message
            raise
    return "\x00".join(parts)


def _to_tuple(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        return (names,)
    return tuple(names)


@final
@attrs.frozen
class Inputs(_Builtin):
    """Key on the run's inputs (its bound arguments, defaults included), minus ``exclude``."""

    exclude: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        if not inputs:
            return None
        return _values_text("argument", inputs, self.exclude)

    def __sub__(self, other: str) -> CachePolicy:
        _check_name(other)
        return _carry(Inputs(exclude=(*self.exclude, other)), self)


@final
@attrs.frozen
class TaskSource(_Builtin):
    """Key on the task's identity and source code: editing the task invalidates the cache."""

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return str(task_ctx.task.task_key)


@final
@attrs.frozen
class FlowParameters(_Builtin):
    """Key on the parameters of the enclosing flow run (no key outside a flow)."""

    needs_flow_parameters = True

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        if not flow_parameters:
            return None
        return _values_text("flow parameter", flow_parameters)


@final
@attrs.frozen
class RunId(_Builtin):
    """Key on the enclosing flow run's id; outside a flow, on the parent run's (or the run's
    own, which never repeats)."""

    keys_on_run = True

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        run = task_ctx.task_run
        owner = run.flow or run.parent or run
        return str(owner.id)


@final
@attrs.frozen
class NoCache(_Builtin):
    """No key: runs are neither cached nor persisted. Adding it to a policy changes nothing."""

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return other


@final
@attrs.frozen
class CacheKeyFnPolicy(CachePolicy):
    """Key given by a function ``cache_key_fn(context, parameters) -> str | None``."""

    cache_key_fn: Callable[[KeyContext, dict[str, Any]], str | None]
    needs_flow_parameters = False

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        key = self.cache_key_fn(task_ctx, inputs)
        if key is not None and not isinstance(key, str):
            name = getattr(self.cache_key_fn, "__name__", repr(self.cache_key_fn))
            raise TypeError(
                f"cache_key_fn {name!r} must return a str or None, got {type(key).__name__}"
            )
        return key


def _flatten(policies: Iterable[CachePolicy]) -> tuple[CachePolicy, ...]:
    flat: list[CachePolicy] = []
    excludes: set[str] = set()
    has_inputs = False
    for policy in policies:
        parts = policy.policies if isinstance(policy, CompoundCachePolicy) else (policy,)
        for part in parts:
            if not isinstance(part, CachePolicy):
                raise TypeError(f"Expected a CachePolicy, got {type(part).__name__}")
            if isinstance(part, Inputs):
                has_inputs = True
                excludes.update(part.exclude)
            elif not isinstance(part, NoCache):
                flat.append(part)
    if has_inputs:
        # One Inputs part, leaving out everything any of them left out.
        flat.append(Inputs(exclude=tuple(sorted(excludes))))
    return tuple(flat)


@final
@attrs.frozen
class CompoundCachePolicy(_Builtin):
    """Several policies at once: the key changes when any part's key changes.

    Parts whose key is ``None`` are left out; when every part is ``None`` there is no key.
    The order of the parts does not matter: ``INPUTS + TASK_SOURCE == TASK_SOURCE + INPUTS``
    in key as well as in value.
    """

    policies: tuple[CachePolicy, ...] = attrs.field(converter=_flatten)

    @property
    def needs_flow_parameters(self) -> bool:  # type: ignore[override]  # derived from the parts
        return any(policy.needs_flow_parameters for policy in self.policies)

    @property
    def keys_on_run(self) -> bool:  # type: ignore[override]  # derived from the parts
        return any(policy.keys_on_run for policy in self.policies)

    def key_text(
        self, task_ctx: KeyContext, inputs: dict[str, Any], flow_parameters: dict[str, Any]
    ) -> str | None:
        parts = []
        for policy in self.policies:
            text = policy.key_text(task_ctx, inputs, flow_parameters)
            if text is not None:
                parts.append(f"{type(policy).__qualname__}:{len(text)}:{text}")
        if not parts:
            return None
        parts.sort()
        return "\x1f".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompoundCachePolicy):
            return NotImplemented
        return sorted(map(repr, self.policies)) == sorted(map(repr, other.policies))

    def __hash__(self) -> int:
        return hash(tuple(sorted(map(repr, self.policies))))

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return _carry(CompoundCachePolicy(policies=(*self.policies, other)), self, other)

    def __sub__(self, other: str) -> CachePolicy:
        _check_name(other)
        if not any(isinstance(policy, Inputs) for policy in self.policies):
            return self  # no dependency on inputs to begin with
        return _carry(
            CompoundCachePolicy(policies=(*self.policies, Inputs(exclude=(other,)))), self
        )


def task_input_hash(context: KeyContext, arguments: dict[str, Any]) -> str | None:
    """A ``cache_key_fn`` keying on the task's identity and source and all its arguments.

    An argument that cannot be hashed stably raises :class:`UnhashableInput` naming it.
    """
    return digest_text(f"{context.task.task_key}\x00{_values_text('argument', arguments)}")


INPUTS: CachePolicy = Inputs()
TASK_SOURCE: CachePolicy = TaskSource()
FLOW_PARAMETERS: CachePolicy = FlowParameters()
RUN_ID: CachePolicy = RunId()
NO_CACHE: CachePolicy = NoCache()
#: Prefect's other name for :data:`NO_CACHE`.
NONE: CachePolicy = NO_CACHE
#: The same call twice in one flow run is cached; a new flow run, or edited source, recomputes.
DEFAULT: CachePolicy = INPUTS + TASK_SOURCE + RUN_ID
