"""What ``Task`` and ``Flow`` share: a function, its options as one attrs value, and the spec the
core reads.

A definition keeps the user's options exactly as given (``options``, frozen), checks them and
derives the :class:`~actorflow._core.RunSpec` its runs read (``spec``). ``with_options`` is
``attrs.evolve`` of the options; the hook decorators (``@my_task.on_completion``) evolve them too.
Definitions bind like methods: on an instance, on a class (``@task`` over ``@classmethod``), or
not at all (over ``@staticmethod``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import types
from collections.abc import Callable
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar

import attrs

from ._core import RunSpec, Signature
from ._options import check_hooks

__all__ = ["Definition"]

P = ParamSpec("P")
R = TypeVar("R")
D = TypeVar("D", bound="Definition[Any, Any]")

#: How a definition made from a method wrapper binds: like a function, a classmethod, a
#: staticmethod.
_INSTANCE, _CLASS, _STATIC = "instance", "class", "static"


class Definition(Generic[P, R]):
    """The shared part of ``Task`` and ``Flow``; subclasses set ``kind`` and ``Options`` and
    build their spec in :meth:`_make_spec`."""

    kind: ClassVar[str]
    Options: ClassVar[type[Any]]
    #: Hook options the ``@definition.on_...`` decorators extend.
    hook_options: ClassVar[tuple[str, ...]]

    options: Any
    spec: RunSpec

    def __init__(self, fn: Callable[P, R], options: Any = None, /, **given: Any) -> None:
        binding = _INSTANCE
        if isinstance(fn, classmethod):
            binding, fn = _CLASS, fn.__func__
        elif isinstance(fn, staticmethod):
            binding, fn = _STATIC, fn.__func__
        if not callable(fn):
            raise TypeError(f"@{self.kind} needs a callable, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # a callable object, not a function
        self._binding = binding
        self._bound_to: Any = None  # the instance or class of a copy bound like a method
        self.options = options if options is not None else self.Options(**given)
        self._define(fn)

    def _define(self, fn: Callable[..., Any]) -> None:
        if not hasattr(self, "_fn_name"):  # the first function names the definition for good
            self._fn_name = str(getattr(fn, "__name__", type(fn).__name__))
        self._fn = fn
        self._unbound_fn: Callable[..., Any] = fn
        self.isasync = inspect.iscoroutinefunction(fn) or (
            not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)
        )
        self._signature = Signature(fn)
        self._setup()
        self.spec = self._make_spec()

    @property
    def fn(self) -> Callable[..., Any]:
        """The function; assigning another one redefines the task or flow, as in Prefect."""
        return self._fn

    @fn.setter
    def fn(self, fn: Callable[..., Any]) -> None:
        self._define(fn)

    # -- what subclasses provide ----------------------------------------------------------------
    def _setup(self) -> None:
        """Checks and derived values made once per definition (before :meth:`_make_spec`)."""

    def _make_spec(self) -> RunSpec:
        raise NotImplementedError

    # -- options --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_async(self) -> bool:
        return self.isasync

    @property
    def signature(self) -> Signature:
        return self._signature

    def with_options(self: D, **changes: Any) -> D:
        """A copy with some options changed (any option of the decorator)."""
        try:
            options = attrs.evolve(self.options, **changes)
        except TypeError:
            known = {a.alias for a in attrs.fields(type(self.options))}
            unknown = sorted(set(changes) - known)
            raise TypeError(f"with_options() got unknown option(s): {', '.join(unknown)}") from None
        fn: Any = self.fn
        if self._binding == _CLASS:
            fn = classmethod(fn)
        elif self._binding == _STATIC:
            fn = staticmethod(fn)
        return type(self)(fn, options)

    def _add_hook(self, option: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        check_hooks(self.kind, option, [hook])
        hooks = (*(getattr(self.options, option) or ()), hook)
        self.options = attrs.evolve(self.options, **{option: hooks})
        self.spec = self._make_spec()
        return hook

    # -- binding like a method ------------------------------------------------------------------
    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """Arguments by parameter name; a method's instance (or class) is included first."""
        bound = self._bound_to
        if bound is not None:
            unbound = Signature(self._unbound_fn)
            return unbound.bind((bound, *args), kwargs, apply_defaults)
        return self._signature.bind(args, kwargs, apply_defaults)

    def __get__(self: D, instance: Any, owner: Any = None) -> D:
        binding = self._binding
        if binding == _STATIC or self._bound_to is not None:
            return self
        target = instance if binding == _INSTANCE else (owner or type(instance))
        if target is None:
            return self
        bound = copy.copy(self)
        bound._unbound_fn = self._fn
        bound._fn = types.MethodType(self._fn, target)
        bound._bound_to = target
        bound._signature = Signature(bound._fn)
        bound.spec = bound._make_spec()
        return bound

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
