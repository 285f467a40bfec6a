"""Serializers: how a result becomes the payload of a record, and back.

A serializer writes a *format* name into each record (``"json"``, ``"pickle"``, ...) and reads
only the formats it trusts. The default, ``"auto"``, writes JSON (orjson) when the value
survives a JSON round trip exactly (same types, same values) and pickle otherwise, so a hit
returns what a fresh run would have returned.

Pickle payloads run code when loaded: read pickle records only from storage you trust. A task
whose ``result_serializer`` is ``"json"`` never unpickles anything; a pickle record found under
its key is treated as a miss and replaced.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import pickle
import zlib
from typing import Any, Protocol, final, runtime_checkable

import orjson

__all__ = [
    "AutoSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "resolve_serializer",
]


@runtime_checkable
class Serializer(Protocol):
    """Turns values into ``(format, payload)`` and payloads of the formats it reads back."""

    name: str

    def dumps(self, value: Any) -> tuple[str, bytes]: ...

    def loads(self, fmt: str, payload: bytes) -> Any: ...

    def reads(self, fmt: str) -> bool:
        """Whether records in ``fmt`` may be loaded by this serializer."""
        ...


@final
class JSONSerializer:
    """orjson: fast and safe to load. Values become JSON types (a tuple comes back a list)."""

    name = "json"
    _options = orjson.OPT_SERIALIZE_NUMPY

    def dumps(self, value: Any) -> tuple[str, bytes]:
        try:
            return "json", orjson.dumps(value, option=self._options)
        except TypeError as exc:
            raise TypeError(
                f"a result of type {type(value).__name__} cannot be serialized as JSON ({exc}); "
                'use result_serializer="pickle" (or the default, "auto")'
            ) from None

    def loads(self, fmt: str, payload: bytes) -> Any:
        return orjson.loads(payload)

    def reads(self, fmt: str) -> bool:
        return fmt == "json"

    def __repr__(self) -> str:
        return "JSONSerializer()"


@final
class PickleSerializer:
    """cloudpickle when installed (functions and classes by value), else pickle.

    Loading a pickle runs code: read pickle records only from trusted storage.
    """

    name = "pickle"

    def __init__(self, picklelib: str | None = None) -> None:
        if picklelib is None:
            found = importlib.util.find_spec("cloudpickle") is not None
            picklelib = "cloudpickle" if found else "pickle"
        if picklelib not in ("pickle", "cloudpickle"):
            raise ValueError(f"picklelib must be 'pickle' or 'cloudpickle', got {picklelib!r}")
        self.picklelib = picklelib

    def dumps(self, value: Any) -> tuple[str, bytes]:
        if self.picklelib == "cloudpickle":
            cloudpickle = importlib.import_module("cloudpickle")
            data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            return "cloudpickle", data
        return "pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, fmt: str, payload: bytes) -> Any:
        if fmt == "json":
            return orjson.loads(payload)
        if fmt == "cloudpickle":
            importlib.import_module("cloudpickle")  # its reducers must be importable
        return pickle.loads(payload)

    def reads(self, fmt: str) -> bool:
        return fmt in ("pickle", "cloudpickle", "json")

    def __repr__(self) -> str:
        return f"PickleSerializer(picklelib={self.picklelib!r})"


def json_exact(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` comes back from a JSON round trip with the same types and values."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-(2**63) <= value < 2**64)
    if kind is float:
        return math.isfinite(value)
    if depth > 200:
        return False
    if kind is list:
        return all(json_exact(item, depth + 1) for item in value)
    if kind is dict:
        return all(type(k) is str and json_exact(v, depth + 1) for k, v in value.items())
    return False


@final
class AutoSerializer:
    """JSON when the value round-trips exactly, pickle otherwise (the default)."""

    name = "auto"

    def __init__(self, pickler: PickleSerializer | None = None) -> None:
        self.pickler = pickler or PickleSerializer()

    def dumps(self, value: Any) -> tuple[str, bytes]:
        if json_exact(value):
            try:
                return "json", orjson.dumps(value)
            except orjson.JSONEncodeError:
                pass  # text JSON cannot carry, e.g. lone surrogates from os.fsdecode
        return self.pickler.dumps(value)

    def loads(self, fmt: str, payload: bytes) -> Any:
        return self.pickler.loads(fmt, payload)

    def reads(self, fmt: str) -> bool:
        return self.pickler.reads(fmt)

    def __repr__(self) -> str:
        return "AutoSerializer()"


@final
class CompressedSerializer:
    """Another serializer's payload, zlib-compressed (format ``"compressed/<inner>"``)."""

    def __init__(self, serializer: Any = "pickle", level: int = 6) -> None:
        self.inner = resolve_serializer(serializer)
        self.level = level
        self.name = f"compressed/{self.inner.name}"

    def dumps(self, value: Any) -> tuple[str, bytes]:
        fmt, payload = self.inner.dumps(value)
        return f"compressed/{fmt}", zlib.compress(payload, self.level)

    def loads(self, fmt: str, payload: bytes) -> Any:
        return self.inner.loads(fmt.removeprefix("compressed/"), zlib.decompress(payload))

    def reads(self, fmt: str) -> bool:
        return fmt.startswith("compressed/") and self.inner.reads(fmt.removeprefix("compressed/"))

    def __repr__(self) -> str:
        return f"CompressedSerializer({self.inner!r})"


@final
class _Adapted:
    """A Prefect-style serializer object (``dumps(obj) -> bytes``, ``loads(bytes)``)."""

    def __init__(self, serializer: Any) -> None:
        self.serializer = serializer
        self.name = str(getattr(serializer, "type", None) or type(serializer).__qualname__)

    def dumps(self, value: Any) -> tuple[str, bytes]:
        return self.name, bytes(self.serializer.dumps(value))

    def loads(self, fmt: str, payload: bytes) -> Any:
        return self.serializer.loads(payload)

    def reads(self, fmt: str) -> bool:
        return fmt == self.name

    def __repr__(self) -> str:
        return repr(self.serializer)


_NAMED: dict[str, Any] = {
    "auto": AutoSerializer,
    "json": JSONSerializer,
    "pickle": PickleSerializer,
    "cloudpickle": lambda: PickleSerializer("cloudpickle"),
    "compressed/pickle": lambda: CompressedSerializer("pickle"),
    "compressed/json": lambda: CompressedSerializer("json"),
}


@functools.cache
def _named(name: str) -> Serializer:
    factory = _NAMED.get(name)
    if factory is None:
        raise ValueError(
            f"Unknown result_serializer {name!r}; expected one of {sorted(_NAMED)} or a "
            "serializer object"
        )
    return factory()  # type: ignore[no-any-return]  # the factory is resolved from an import path


def resolve_serializer(spec: Any) -> Serializer:
    """A serializer from a ``result_serializer`` option: ``None`` (auto), a name, or an object."""
    if spec is None:
        return _named("auto")
    if isinstance(spec, str):
        return _named(spec)
    if isinstance(spec, Serializer):
        return spec
    if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        return _Adapted(spec)
    raise TypeError(
        f"result_serializer must be a name, a Serializer or an object with dumps/loads, "
        f"got {type(spec).__name__}"
    )
