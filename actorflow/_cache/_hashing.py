"""Stable hashing of values: the same value gives the same digest in every process.

A value is encoded to canonical bytes and hashed with BLAKE2b. Containers are framed and
type-tagged, so a list and a tuple, ``1`` and ``True``, or ``"1"`` and ``1`` never collide;
dict and set members are sorted by their encoding, so hash-seed order never leaks into a key.
Anything else is encoded through its pickle reduction (``__reduce_ex__``), the same description
of state that pickle uses, but with every part encoded canonically. Objects that refuse to
pickle (locks, files, sockets, generators) cannot be hashed stably: that raises
:class:`UnhashableInput` naming where in the value the culprit sits, instead of quietly
leaving it out of the key.
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable
from typing import Any

from .._core import ActorflowException

__all__ = [
    "DECIMAL_BITS",
    "REPR_SAFE",
    "CacheKeyError",
    "UnhashableInput",
    "canonical",
    "digest_bytes",
    "digest_text",
    "stable_digest",
    "values_digest",
]


class CacheKeyError(ActorflowException, ValueError):
    """A task run's cache key could not be computed (a policy or key function failed)."""


class UnhashableInput(CacheKeyError):
    """A value cannot be hashed stably; :attr:`where` says which part of it."""

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}" if self.where else self.reason


def stable_digest(*parts: Any) -> str:
    """A 40-hex-digit digest of ``parts``, equal across processes for equal inputs."""
    return digest_bytes(canonical(parts))


def values_digest(values: tuple[tuple[str, Any], ...]) -> str:
    """The digest of labelled values; an unhashable one raises :class:`UnhashableInput` whose
    ``argument`` is its label."""
    parts = []
    for label, value in values:
        try:
            parts.append(_frame(label.encode()) + _frame(canonical(value)))
        except UnhashableInput as exc:
            exc.argument = label  # type: ignore[attr-defined]  # read by the messages that name it
            raise
    return digest_bytes(b"".join(parts))


def digest_bytes(data: bytes) -> str:
    """40 hex digits of SHA-256 (the fastest strong hash here, with CPU support)."""
    return hashlib.sha256(data).hexdigest()[:40]


def digest_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]


# Exact types whose ``repr`` is deterministic and tells them apart from each other, so a key
# text can use it directly instead of the slower canonical encoding.
REPR_SAFE = frozenset({str, int, float, bool, type(None)})


def canonical(value: Any) -> bytes:
    """The canonical byte encoding of ``value`` (raises :class:`UnhashableInput`)."""
    return _enc(value, [])


def _frame(data: bytes) -> bytes:
    return b"%d:%s" % (len(data), data)


def _seq(tag: bytes, items: Any, stack: list[int]) -> bytes:
    out = [tag]
    for index, item in enumerate(items):
        try:
            out.append(_frame(_enc(item, stack)))
        except UnhashableInput as exc:
            exc.where = f"[{index}]{exc.where}"
            raise
    out.append(b")")
    return b"".join(out)


def _mapping(tag: bytes, items: Any, stack: list[int], attrs: bool = False) -> bytes:
    pairs = []
    for key, item in items:
        try:
            encoded_key = _enc(key, stack)
        except UnhashableInput as exc:
            exc.where = f"<key {key!r}>{exc.where}"
            raise
        try:
            encoded = _enc(item, stack)
        except UnhashableInput as exc:
            exc.where = (
                f"{'.' + key if attrs and isinstance(key, str) else f'[{key!r}]'}{exc.where}"
            )
            raise
        pairs.append(_frame(encoded_key) + _frame(encoded))
    pairs.sort()
    return tag + b"".join(pairs) + b")"


def _set(tag: bytes, items: Any, stack: list[int]) -> bytes:
    members = []
    for item in items:
        try:
            members.append(_frame(_enc(item, stack)))
        except UnhashableInput as exc:
            exc.where = f"<member {item!r}>{exc.where}"
            raise
    members.sort()
    return tag + b"".join(members) + b")"


def _qualified(obj: Any) -> bytes:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}".encode()


def _code(code: types.CodeType, stack: list[int]) -> bytes:
    consts = tuple(_code(c, stack) if isinstance(c, types.CodeType) else c for c in code.co_consts)
    return b"".join(
        (
            b"C",
            _frame(code.co_code),
            _frame(_enc(consts, stack)),
            _frame(_enc(code.co_names, stack)),
        )
    )


def _function(fn: types.FunctionType, stack: list[int]) -> bytes:
    parts = [b"f", _frame(_qualified(fn)), _frame(_code(fn.__code__, stack))]
    try:
        parts.append(_frame(_enc(fn.__defaults__, stack)))
        parts.append(_frame(_enc(fn.__kwdefaults__, stack)))
        cells = tuple(cell.cell_contents for cell in fn.__closure__ or ())
        parts.append(_frame(_enc(cells, stack)))
    except ValueError:  # an empty closure cell
        parts.append(b"<empty cell>")
    except UnhashableInput as exc:
        exc.where = f"<function {fn.__qualname__}>{exc.where}"
        raise
    return b"".join(parts)


def _reduced(obj: Any, stack: list[int]) -> bytes:
    try:
        reduced = obj.__reduce_ex__(4)
    except Exception as exc:
        raise UnhashableInput(
            f"a {type(obj).__module__}.{type(obj).__qualname__} cannot be hashed stably ({exc})"
        ) from None
    if isinstance(reduced, str):  # a module-level singleton, named
        return b"g" + _frame(_qualified(type(obj))) + reduced.encode()
    fn, args, state, listitems, dictitems = (tuple(reduced) + (None,) * 5)[:5]
    out = [b"o", _frame(_qualified(type(obj))), _frame(_enc(fn, stack))]
    try:
        out.append(_frame(_enc(args, stack)))
    except UnhashableInput as exc:
        exc.where = f"<{type(obj).__qualname__} args>{exc.where}"
        raise
    # The state is usually the instance __dict__ (or a pair with the slots): name attributes.
    if (
        type(state) is tuple
        and len(state) == 2
        and all(part is None or type(part) is dict for part in state)
    ):
        for part in state:
            out.append(_frame(b"N" if part is None else _mapping(b"d", part.items(), stack, True)))
    elif type(state) is dict:
        out.append(_frame(_mapping(b"d", state.items(), stack, True)))
    else:
        out.append(_frame(_enc(state, stack)))
    if listitems is not None:
        out.append(_frame(_seq(b"l", listitems, stack)))
    if dictitems is not None:
        out.append(_frame(_mapping(b"d", dictitems, stack)))
    return b"".join(out)


def _enc(obj: Any, stack: list[int]) -> bytes:
    kind = type(obj)
    scalar = _SCALARS.get(kind)
    if scalar is not None:
        return scalar(obj)
    ident = id(obj)
    if ident in stack:
        return b"<cycle %d>" % (len(stack) - stack.index(ident))
    stack.append(ident)
    try:
        container = _CONTAINERS.get(kind)
        if container is not None:
            return container(obj, stack)
        if isinstance(obj, type):
            return b"y" + _qualified(obj)
        if kind is types.FunctionType:
            return _function(obj, stack)
        if kind is types.MethodType:
            return b"m" + _frame(_enc(obj.__func__, stack)) + _frame(_enc(obj.__self__, stack))
        if kind is types.BuiltinFunctionType or kind is types.BuiltinMethodType:
            owner = getattr(obj, "__self__", None)
            if owner is None or isinstance(owner, types.ModuleType):
                return b"F" + _qualified(obj)
            return b"F" + _qualified(obj) + _frame(_enc(owner, stack))
        if kind is types.ModuleType:
            return b"M" + str(obj.__name__).encode()
        return _reduced(obj, stack)
    finally:
        stack.pop()


#: Ints this wide or wider are written in hex: Python refuses their decimal text (its
#: ``sys.get_int_max_str_digits()`` limit, 4,300 digits by default, is about 14,284 bits).
DECIMAL_BITS = 14_000


def _float(value: float) -> bytes:
    return b"r" + repr(value).encode()


_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda _: b"N",
    bool: lambda v: b"T" if v else b"F",
    # Decimal text of ints over ~4,300 digits is refused by Python; such ints go in hex.
    int: lambda v: b"i%d" % v if v.bit_length() < DECIMAL_BITS else b"i0x%x" % v,
    float: _float,
    complex: lambda v: b"c" + repr(v).encode(),
    str: lambda v: b"s" + v.encode("utf-8", "surrogatepass"),
    bytes: lambda v: b"b" + v,
    bytearray: lambda v: b"B" + bytes(v),
    type(Ellipsis): lambda _: b"E",
    type(NotImplemented): lambda _: b"I",
}


def _flat(items: Any) -> bool:
    safe = REPR_SAFE
    return all(type(item) in safe for item in items)


# Flat containers of plain scalars (the common case for big inputs) are encoded by ``repr`` in
# C, under their own tags; a container is always encoded the same way, as its content decides.
def _list(value: list[Any], stack: list[int]) -> bytes:
    if _flat(value):
        return b"L" + repr(value).encode("utf-8", "surrogatepass")
    return _seq(b"l", value, stack)


def _tuple(value: tuple[Any, ...], stack: list[int]) -> bytes:
    if _flat(value):
        return b"U" + repr(value).encode("utf-8", "surrogatepass")
    return _seq(b"t", value, stack)


def _dict(value: dict[Any, Any], stack: list[int]) -> bytes:
    if all(type(key) is str for key in value) and _flat(value.values()):
        return b"D" + repr(sorted(value.items())).encode("utf-8", "surrogatepass")
    return _mapping(b"d", value.items(), stack)


_CONTAINERS: dict[type, Callable[[Any, list[int]], bytes]] = {
    list: _list,
    tuple: _tuple,
    dict: _dict,
    set: lambda v, s: _set(b"S", v, s),
    frozenset: lambda v, s: _set(b"Z", v, s),
}
