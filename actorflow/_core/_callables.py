"""Helpers about the user's functions: signatures, binding, run names, hook validation, keys."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ._exceptions import ParameterBindError


class Signature:
    """A function's signature, with fast conversions between calls and parameter dicts."""

    __slots__ = ("_defaults", "_names", "_positional", "fn", "sig", "simple", "var_kw")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.sig = inspect.signature(fn)
        params = self.sig.parameters.values()
        kinds = {p.kind for p in params}
        # "simple": every parameter can be passed by keyword, so a dict of parameters is a call.
        self.simple = kinds <= {
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        }
        self.var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        # For binding the common calls without inspect's machinery (which costs microseconds).
        self._names = tuple(p.name for p in params) if self.simple else None
        self._positional = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], apply_defaults: bool = True
    ) -> dict[str, Any]:
        """Parameters by name; raises :class:`ParameterBindError` naming the mismatch."""
        names = self._names
        if names is not None and len(args) <= self._positional:
            params: dict[str, Any] = dict(zip(names, args, strict=False))
            used = len(args)
            defaults = self._defaults
            for name in names[used:]:
                if name in kwargs:
                    params[name] = kwargs[name]
                    used += 1
                elif name in defaults:
                    if apply_defaults:
                        params[name] = defaults[name]
                else:
                    break  # a missing argument: inspect says which, below
            else:
                if used == len(args) + len(kwargs):
                    return params
        try:
            bound = self.sig.bind(*args, **kwargs)
        except TypeError as exc:
            name = getattr(self.fn, "__name__", repr(self.fn))
            listed = ", ".join(self.sig.parameters)
            raise ParameterBindError(
                f"Error binding parameters for function {name!r}: {exc}.\nFunction {name!r} "
                f"has signature {listed!r} but received args: {args} and kwargs: "
                f"{list(kwargs)}."
            ) from None
        if apply_defaults:
            bound.apply_defaults()
        return dict(bound.arguments)

    def expand_var_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """Flatten the ``**kwargs`` entry of ``params`` into top-level names (for ``map``)."""
        if self.var_kw is None or self.var_kw not in params:
            return params
        out = dict(params)
        out.update(out.pop(self.var_kw))
        return out

    def to_call(self, params: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The ``(args, kwargs)`` that pass ``params`` to the function."""
        if self.simple:
            return (), params
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        known = self.sig.parameters
        for name, value in params.items():
            param = known.get(name)
            if param is None:
                kwargs[name] = value  # an expanded **kwargs entry
            elif param.kind is param.POSITIONAL_ONLY:
                args.append(value)
            elif param.kind is param.VAR_POSITIONAL:
                args.extend(value)
            elif param.kind is param.VAR_KEYWORD:
                kwargs.update(value)
            elif (
                param.kind is param.POSITIONAL_OR_KEYWORD
                and not kwargs
                and len(args) == list(known).index(name)
            ):
                args.append(value)
            else:
                kwargs[name] = value
        return tuple(args), kwargs


def is_bind_error(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by the call itself (wrong arguments), not inside the body."""
    tb = exc.__traceback__
    return isinstance(exc, TypeError) and tb is not None and tb.tb_next is None


def format_run_name(
    kind: str,
    owner: str,
    template: str | Callable[..., str],
    parameters: Callable[[], dict[str, Any]],
) -> str:
    """Format a ``task_run_name``/``flow_run_name`` template or call a name function.

    ``owner`` names the task or flow (``"task 'train'"``) in the error a template that does not
    fit the call's arguments raises, or a name function that raises (a ``ValueError`` naming the
    option, chained to the function's own error).
    """
    option = f"{kind}_run_name"
    if isinstance(template, str):
        params = parameters()
        try:
            return template.format(**params)
        except (KeyError, AttributeError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{owner}: {option} {template!r} cannot be formatted with the run's parameters "
                f"({', '.join(params) or 'none'}): {type(exc).__name__}: {exc}"
            ) from exc
    if callable(template):
        try:
            wants_params = "parameters" in inspect.signature(template).parameters
        except (TypeError, ValueError):
            wants_params = False
        try:
            name = template(parameters=parameters()) if wants_params else template()
        except Exception as exc:
            what = getattr(template, "__qualname__", None) or repr(template)
            raise ValueError(
                f"{owner}: its {option} callable {what} raised {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(name, str):
            raise TypeError(
                f"Callable {template} for {option!r} returned type {type(name).__name__} but a "
                "string is required."
            )
        return name
    raise TypeError(
        f"Expected string or callable for {option!r}; got {type(template).__name__} instead."
    )
