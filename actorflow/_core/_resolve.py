"""Walking a run's arguments for futures: collecting upstream runs, then substituting results.

Futures are found at any depth inside lists, tuples, sets, dicts, dataclasses and attrs
instances. ``quote(x)`` stops the walk at ``x``; ``allow_failure(f)`` lets a run go ahead when
``f`` failed (it then receives the exception). ``unmapped(x)`` marks a ``map`` argument as static.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import attrs

from ._drive import UPSTREAM
from ._exceptions import MappingLengthMismatch, MappingMissingIterable, UpstreamTaskError
from ._futures import TaskFuture, TaskFutureList
from ._states import FAILED, NOT_READY, State

if TYPE_CHECKING:
    from ._actor import Actor

T = TypeVar("T")

_ATOMIC: frozenset[type] = frozenset({int, float, str, bytes, bool, type(None), complex, range})


class _Mark(Generic[T]):
    """One value, marked for the walk: frozen, equal and hashed by kind and value, shown as
    ``quote(value=1)``, pickled as made. Plain slotted classes (attrs would compile their
    methods at import, which every start-up would pay for)."""

    __slots__ = ("value",)
    __match_args__ = ("value",)

    value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise attrs.exceptions.FrozenInstanceError

    def __delattr__(self, name: str) -> None:
        raise attrs.exceptions.FrozenInstanceError

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(self.value == other.value)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self) -> int:
        return hash((self.__class__, self.value))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(value={self.value!r})"

    def __reduce__(self) -> tuple[type[_Mark[T]], tuple[T]]:
        return (self.__class__, (self.value,))


@final
class unmapped(_Mark[T]):
    """Pass ``value`` whole to every run of a ``Task.map`` call."""

    __slots__ = ()


@final
class allow_failure(_Mark[T]):
    """Let the downstream run go ahead even if the upstream ``value`` did not complete."""

    __slots__ = ()


@final
class quote(_Mark[T]):
    """Pass ``value`` as it is: no future inside it is looked for or resolved."""

    __slots__ = ()

    def unquote(self) -> T:
        return self.value


@final
class opaque(_Mark[T]):
    """Resolve ``value`` if it is a future (or state), but do not look inside it for others:
    for large arguments, whose traversal would cost."""

    __slots__ = ()


class NotReadyError(Exception):
    """Raised inside resolution: an upstream run did not complete."""

    def __init__(self, run_id: int | None) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def _children(value: Any) -> Iterable[Any] | None:
    kind = type(value)
    if kind in (list, tuple, set, frozenset) or kind is TaskFutureList:
        collection: Iterable[Any] = value
        return collection
    if kind is dict:
        return (*value.keys(), *value.values())
    if isinstance(value, _Mark):
        return (value.value,)
    if hasattr(kind, "__dataclass_fields__"):  # dataclasses.is_dataclass, without importing it
        import dataclasses

        return (getattr(value, f.name) for f in dataclasses.fields(value))
    if attrs.has(kind):
        return (getattr(value, a.name) for a in attrs.fields(kind))
    return None


def collect(value: Any, into: list[tuple[Actor, bool]], allowed: bool = False) -> None:
    """Append ``(run, failure_allowed)`` for every future found in ``value``."""
    kind = type(value)
    if kind in _ATOMIC:
        return
    if kind is TaskFuture:
        into.append((value.task_run, allowed))
        return
    if kind is allow_failure:
        collect(value.value, into, True)
        return
    if kind is quote:
        return
    if kind is opaque:
        if type(value.value) is TaskFuture:
            into.append((value.value.task_run, allowed))
        return
    children = _children(value)
    if children is not None:
        for child in children:
            if type(child) not in _ATOMIC:  # inline: most members are plain values
                collect(child, into, allowed)


def substitute(value: Any, allowed: bool = False) -> Any:
    """A copy of ``value`` with each future, and each state, replaced by its run's result.

    Raises :class:`NotReadyError` for an upstream run that did not complete, unless it sits
    inside ``allow_failure``, in which case its exception takes its place.
    """
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is TaskFuture:
        return _result_of(value.task_run.state, allowed)
    if isinstance(value, State):  # a state passed as an argument gives its result, as in Prefect
        return _result_of(value, allowed)
    if kind is allow_failure:
        return substitute(value.value, True)
    if kind is quote:
        return value.value
    if kind is opaque:
        inner = value.value
        if type(inner) is TaskFuture or isinstance(inner, State):
            return substitute(inner, allowed)
        return inner
    if kind is unmapped:
        return substitute(value.value, allowed)
    if kind is TaskFutureList:  # the futures of a map call resolve to a plain list of results
        return [substitute(v, allowed) for v in value]
    return _rebuilt(value, lambda child: substitute(child, allowed))


def _result_of(state: State[Any], allowed: bool) -> Any:
    if state.is_completed():
        return state.data
    if allowed and state.is_final():
        return state.value(raise_on_failure=False)
    raise NotReadyError(state.run_id)


def map_futures(value: Any, fn: Callable[[TaskFuture[Any]], Any]) -> Any:
    """A copy of ``value`` with ``fn(future)`` in place of each future, at any depth (``quote``
    stops the walk; a map call's futures become a plain list)."""
    kind = type(value)
    if kind in _ATOMIC or kind is quote:
        return value
    if kind is TaskFuture:
        return fn(value)
    if kind is TaskFutureList:
        return [map_futures(v, fn) for v in value]
    return _rebuilt(value, lambda child: map_futures(child, fn))


def _rebuilt(value: Any, fn: Callable[[Any], Any]) -> Any:
    """``value`` (a list, tuple, set, dict, dataclass or attrs instance) with ``fn`` applied to
    its members; the same object when nothing changed."""
    kind = type(value)
    if kind in (list, tuple, set, frozenset):
        for v in value:
            if type(v) not in _ATOMIC:
                break
        else:
            return value  # plain values only (the common case): nothing to replace
        items = [fn(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value  # nothing inside was replaced: keep the caller's object
        return kind(items)
    if kind is dict:
        pairs = [(fn(k), fn(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, _Mark):
        inner = fn(value.value)
        return value if inner is value.value else kind(inner)
    if hasattr(kind, "__dataclass_fields__"):
        import dataclasses

        fields = [f for f in dataclasses.fields(value) if f.init]
        changes = {f.name: fn(getattr(value, f.name)) for f in fields}
        if all(changes[f.name] is getattr(value, f.name) for f in fields):
            return value
        return dataclasses.replace(value, **changes)
    if attrs.has(kind):
        fields_ = [a for a in attrs.fields(kind) if a.init]
        changes = {a.alias or a.name: fn(getattr(value, a.name)) for a in fields_}
        if all(changes[a.alias or a.name] is getattr(value, a.name) for a in fields_):
            return value
        return attrs.evolve(value, **changes)
    return value


def resolve_inputs(
    actor: Any, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
) -> Generator[tuple[Any, ...], Any, tuple[tuple[Any, ...], dict[str, Any]] | None]:
    """Wait for the runs whose futures are in ``args``, ``kwargs`` and ``wait_for``, then put
    their results in place of the futures; for task and flow engines alike.

    Returns the resolved ``(args, kwargs)``, or ``None`` when an upstream run did not complete
    (outside ``allow_failure``): ``actor`` is then NotReady, and its waiters are released.
    """
    data: list[tuple[Actor, bool]] = []
    collect(args, data)
    collect(kwargs, data)
    ordering: list[tuple[Actor, bool]] = []
    if wait_for is not None:
        collect(wait_for, ordering)
    if data or ordering:
        if any(upstream is actor for upstream, _ in data + ordering):
            # A wait_for list that came to hold the run's own future: waiting would never end.
            name = actor.spec.name
            error = ValueError(
                "Discovered a task depending on itself. Raising to avoid a deadlock. Please "
                f"inspect the inputs and dependencies of {name}."
            )
            actor.transition(FAILED, str(error), error)
            return None
        if not actor.is_flow:
            actor.upstream = [upstream.id for upstream, _ in data]
        yield (UPSTREAM, [upstream for upstream, _ in data + ordering])
    try:
        for upstream, allowed in ordering:
            if not allowed and not upstream.state.is_completed():
                raise NotReadyError(upstream._int_id)
        return substitute(args), substitute(kwargs)
    except NotReadyError as exc:
        import uuid

        upstream_id = "unknown" if exc.run_id is None else uuid.UUID(int=exc.run_id)
        message = f"Upstream task run '{upstream_id}' did not reach a 'COMPLETED' state."
        actor.transition(NOT_READY, message, UpstreamTaskError(message))
        actor.settle(actor.state)
        return None


def has_futures(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Quick check: could ``args``/``kwargs`` hold a future (or a wrapper to unwrap)?"""
    for value in args:
        if type(value) not in _ATOMIC:
            return True
    for value in kwargs.values():
        if type(value) not in _ATOMIC:
            return True
    return False


def map_over(
    fn_name: str,
    params: dict[str, Any],
    is_mappable: Callable[[Any], bool],
) -> list[dict[str, Any]]:
    """Expand ``params`` into one parameter dict per mapped run.

    Iterable values are mapped (see :func:`mappable`), ``unmapped(x)`` and non-iterables are
    passed whole to every run.
    """
    sized: dict[str, Any] = {}
    unsized: dict[str, Any] = {}
    static: dict[str, Any] = {}
    for key, value in params.items():
        if type(value) is unmapped:
            static[key] = value.value
        elif is_mappable(value):
            if hasattr(type(value), "__len__"):
                sized[key] = value
            else:
                unsized[key] = value
        else:
            static[key] = value
    if not sized and not unsized:
        raise MappingMissingIterable(
            "No iterable parameters were received. Parameters for map must include at least one "
            f"iterable. Parameters: {params}"
        )

    def mismatch(lengths: dict[str, Any]) -> MappingLengthMismatch:
        return MappingLengthMismatch(
            "Received iterable parameters with different lengths. Parameters for map must all be "
            f"the same length. Got lengths: {lengths}"
        )

    # What knows its length decides how many items an iterator must give, and an iterator is
    # never asked for more than one item past that: an endless one cannot eat the memory.
    lengths: dict[str, Any] = {k: len(v) for k, v in sized.items()}
    if len(set(lengths.values())) > 1:
        raise mismatch(lengths)
    columns: dict[str, list[Any]] = {k: list(v) for k, v in sized.items()}
    if sized:
        count = next(iter(lengths.values()))
        for key, value in unsized.items():
            items = columns[key] = list(itertools.islice(value, count + 1))
            if len(items) != count:
                got = len(items) if len(items) < count else f"more than {count}"
                raise mismatch({**lengths, key: got})
    else:
        columns = _in_step(fn_name, unsized, mismatch)
        count = len(next(iter(columns.values())))
    return [{**static, **{k: v[i] for k, v in columns.items()}} for i in range(count)]


#: How many items ``map`` takes from iterators of unknown length when nothing else says how many.
MAX_UNSIZED_MAP = 1_000_000
_END = object()


def _in_step(
    fn_name: str,
    iterators: dict[str, Any],
    mismatch: Callable[[dict[str, Any]], MappingLengthMismatch],
) -> dict[str, list[Any]]:
    """Items of iterators of unknown length, taken in step until one ends: all must end
    together, within :data:`MAX_UNSIZED_MAP` items."""
    its = {key: iter(value) for key, value in iterators.items()}
    columns: dict[str, list[Any]] = {key: [] for key in its}
    for count in range(MAX_UNSIZED_MAP + 1):
        row = {key: next(it, _END) for key, it in its.items()}
        ended = [key for key, item in row.items() if item is _END]
        if ended:
            if len(ended) < len(row):
                more = f"more than {count}"
                raise mismatch({key: count if key in ended else more for key in row})
            return columns
        for key, item in row.items():
            columns[key].append(item)
    raise MappingLengthMismatch(
        f"{fn_name}.map() was given only iterators of unknown length ({', '.join(its)}), and "
        f"they gave more than {MAX_UNSIZED_MAP:,} items: an endless iterator cannot be mapped. "
        "Pass a list, or map it together with a sequence of known length, which then decides "
        "how many items are taken."
    )


def mappable(value: Any) -> bool:
    """Whether ``map`` iterates over ``value``: any iterable but str, bytes and file objects."""
    import io

    if isinstance(value, (str, bytes, bytearray, io.IOBase)):
        return False
    try:
        iter(value)
    except TypeError:
        return False
    return True
