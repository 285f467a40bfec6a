"""What ``Task`` and ``Flow`` share: a function, its options as one attrs value, and the spec the
core reads.

A definition keeps the user's options exactly as given (``options``, frozen), checks them and
derives the :class:`~actorflow._core.RunSpec` its runs read (``spec``). ``with_options`` is
``attrs.evolve`` of the options; the hook decorators (``@my_task.on_completion``) and assigning an
option (``my_flow.retries = 2``, as Prefect allows) evolve them too. Reading an option gives it as
given, except where Prefect reports a derived value (``retries``, ``tags``, ``cache_policy``...).
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
    """The shared part of ``Task`` and ``Flow``; subclasses set ``kind`` and ``Options``, check
    and derive in :meth:`_setup` and build their spec in :meth:`_make_spec`."""

    kind: ClassVar[str]
    Options: ClassVar[type[Any]]
    #: Hook options the ``@definition.on_...`` decorators extend.
    hook_options: ClassVar[tuple[str, ...]]
    #: Attributes that are not options (everything set in ``__init__`` and ``_define``).
    _own: ClassVar[frozenset[str]] = frozenset()

    options: Any
    spec: RunSpec
    # Checked options every spec carries, set by the subclass's _setup.
    _retries: int
    _delay: float | list[float] | None
    _timeout: float | None

    def __init__(self, fn: Callable[P, R] | None = None, **given: Any) -> None:
        options = given.pop("_options", None)
        binding = _INSTANCE
        if isinstance(fn, classmethod):
            binding, fn = _CLASS, fn.__func__
        elif isinstance(fn, staticmethod):
            binding, fn = _STATIC, fn.__func__
        if not callable(fn):
            raise TypeError("'fn' must be callable")
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]  # a callable object, not a function
        setattr_ = object.__setattr__  # options are assigned through __setattr__; these are not
        setattr_(self, "_binding", binding)
        setattr_(self, "_bound_to", None)  # the instance or class of a copy bound like a method
        setattr_(self, "options", options if options is not None else self.Options(**given))
        self._define(fn)

    @classmethod
    def decorate(cls, fn: Any, options: dict[str, Any]) -> Any:
        """What ``@task``/``@flow`` give: a definition of ``fn``, or, with no function yet
        (``@task(retries=2)``), a decorator that makes one with these options."""
        if fn is not None:
            return cls(fn, **options)
        return functools.partial(cls, **options)

    def _define(self, fn: Callable[..., Any]) -> None:
        setattr_ = object.__setattr__
        if "_fn_name" not in self.__dict__:  # the first function names the definition for good
            setattr_(self, "_fn_name", str(getattr(fn, "__name__", type(fn).__name__)))
        setattr_(self, "_fn", fn)
        setattr_(self, "_unbound_fn", fn)
        setattr_(
            self,
            "isasync",
            inspect.iscoroutinefunction(fn)
            or inspect.isasyncgenfunction(fn)
            or (not inspect.isfunction(fn) and inspect.iscoroutinefunction(type(fn).__call__)),
        )
        #: A generator function's runs are iterated: "sync" or "async" generator, else None.
        setattr_(
            self,
            "_yields",
            "sync"
            if inspect.isgeneratorfunction(fn)
            else "async"
            if inspect.isasyncgenfunction(fn)
            else None,
        )
        setattr_(self, "_signature", Signature(fn))
        setattr_(self, "_unbound_signature", self._signature)
        self._setup()
        setattr_(self, "spec", self._make_spec())

    # -- what subclasses provide ----------------------------------------------------------------
    def _setup(self) -> None:
        """Checks and derived values made once per definition (before :meth:`_make_spec`)."""

    def _make_spec(self) -> RunSpec:
        raise NotImplementedError

    def _spec_fields(self) -> dict[str, Any]:
        """The fields of :meth:`_make_spec`'s spec that tasks and flows fill alike (subclasses
        set ``_retries``, ``_delay`` and ``_timeout`` in :meth:`_setup`)."""
        o = self.options
        hooks = {
            option: check_hooks(self.kind, option, getattr(o, option))
            for option in self.hook_options
        }
        return {
            "fn": self.fn,
            "is_async": self.isasync,
            "owner": self,
            "bind": self.bind,
            "retries": self._retries,
            "retry_delay": self._delay,
            "timeout": self._timeout,
            "log_prints": o.log_prints,
            **hooks,
        }

    # -- the function and the options -----------------------------------------------------------
    @property
    def fn(self) -> Callable[..., Any]:
        """The function; assigning another one redefines the task or flow, as in Prefect."""
        return self._fn  # type: ignore[no-any-return]  # set in _define

    @fn.setter
    def fn(self, fn: Callable[..., Any]) -> None:
        self._define(fn)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_async(self) -> bool:
        return bool(self.isasync)

    @property
    def signature(self) -> Signature:
        return self._signature  # type: ignore[no-any-return]  # set in _define

    @property
    def retries(self) -> int:
        return self.spec.retries

    @property
    def retry_delay_seconds(self) -> Any:
        delay = self.spec.retry_delay
        return 0 if delay is None else delay

    @property
    def timeout_seconds(self) -> float | None:
        return self.spec.timeout

    @property
    def description(self) -> str | None:
        given: str | None = self.options.description
        return given or inspect.getdoc(self.fn)

    def __getattr__(self, option: str) -> Any:
        # The other options read as given (``task.result_storage``, ``flow.version``...); hook
        # options read as Prefect's lists (``flow.on_failure_hooks``).
        fields = attrs.fields_dict(type(self.options)) if "options" in self.__dict__ else {}
        if option.endswith("_hooks") and option[: -len("_hooks")] in self.hook_options:
            return list(getattr(self.spec, option[: -len("_hooks")]))
        if option.startswith("_") or option not in fields:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {option!r}")
        return getattr(self.options, option)

    def __setattr__(self, name: str, value: Any) -> None:
        # Assigning an option (``my_flow.retries = 2``) redefines the run's options.
        fields = attrs.fields_dict(type(self.options)) if "options" in self.__dict__ else {}
        if name in fields:
            before = self.options
            object.__setattr__(self, "options", attrs.evolve(before, **{name: value}))
            try:
                self._define(self._unbound_fn)
            except BaseException:
                object.__setattr__(self, "options", before)  # a rejected option changes nothing
                self._define(self._unbound_fn)
                raise
        else:
            object.__setattr__(self, name, value)

    def with_options(self: D, **changes: Any) -> D:
        """A copy with some options changed (any option of the decorator)."""
        known = attrs.fields_dict(type(self.options))
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TypeError(f"with_options() got unknown option(s): {', '.join(unknown)}")
        options = attrs.evolve(self.options, **changes)
        fn: Any = self._unbound_fn
        if self._binding == _CLASS:
            fn = classmethod(fn)
        elif self._binding == _STATIC:
            fn = staticmethod(fn)
        return type(self)(fn, _options=options)

    # hooks as decorators: @my_task.on_completion (flows add on_cancellation and on_crashed)
    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._add_hook("on_completion", fn)

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._add_hook("on_failure", fn)

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._add_hook("on_running", fn)

    def _add_hook(self, option: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        check_hooks(self.kind, option, [hook])
        hooks = (*(getattr(self.options, option) or ()), hook)
        object.__setattr__(self, "options", attrs.evolve(self.options, **{option: hooks}))
        object.__setattr__(self, "spec", self._make_spec())
        return hook

    # -- binding like a method ------------------------------------------------------------------
    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """Arguments by parameter name; a method's instance (or class) is included first."""
        bound = self._bound_to
        if bound is not None:
            unbound: Signature = self._unbound_signature
            return unbound.bind((bound, *args), kwargs, apply_defaults)
        return self.signature.bind(args, kwargs, apply_defaults)

    def __get__(self: D, instance: Any, owner: Any = None) -> D:
        binding = self._binding
        if binding == _STATIC or self._bound_to is not None:
            return self
        target = instance if binding == _INSTANCE else (owner or type(instance))
        if target is None:
            return self
        bound = copy.copy(self)
        setattr_ = object.__setattr__
        setattr_(bound, "_fn", types.MethodType(self._unbound_fn, target))
        setattr_(bound, "_bound_to", target)
        setattr_(bound, "_signature", Signature(bound._fn))
        setattr_(bound, "spec", bound._make_spec())
        return bound

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
