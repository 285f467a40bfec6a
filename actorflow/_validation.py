"""Flow parameters checked and coerced against their annotations, as Prefect does.

Prefect validates a flow's parameters with pydantic in its lax mode: ``@flow def typed(x: int)``
called as ``typed("3")`` runs with ``x == 3``, and a value that cannot be coerced fails the flow
run before its body with ``ParameterTypeError`` naming the parameter. actorflow does the same,
with pydantic, but pays for it only where it can change something: parameters without an
annotation, and values that already are of their annotation's exact class (``3`` for ``int``),
are taken as they are, without importing pydantic; the rest go through a pydantic model built
once per flow.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, final

from ._core import ParameterTypeError, Signature

__all__ = ["ParameterValidator"]


@final
class ParameterValidator:
    """Checks and coerces the parameters of one flow's calls."""

    __slots__ = ("_annotations", "_flow", "_model")

    def __init__(self, fn: Callable[..., Any], flow_name: str) -> None:
        self._flow = flow_name
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # an annotation that cannot be resolved: use what is written
            hints = dict(getattr(fn, "__annotations__", {}))
        hints.pop("return", None)
        params = inspect.signature(fn).parameters
        #: Annotated parameters, except ``*args``/``**kwargs`` and ``Any``.
        self._annotations = {
            name: hint
            for name, hint in hints.items()
            if name in params
            and params[name].kind not in (params[name].VAR_POSITIONAL, params[name].VAR_KEYWORD)
            and hint is not Any
        }
        self._model: Any = None

    def validate(
        self, signature: Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's ``(args, kwargs)`` with coerced values; raises ``ParameterBindError`` if
        they do not fit the signature, ``ParameterTypeError`` if a value cannot be coerced."""
        params = signature.bind(args, kwargs, apply_defaults=False)
        annotations = self._annotations
        if not annotations:
            return args, kwargs
        pending = {
            name: value
            for name, value in params.items()
            if name in annotations and type(value) is not annotations[name]
        }
        if not pending:
            return args, kwargs
        coerced = self._coerce(pending)
        if all(coerced[name] is value for name, value in pending.items()):
            return args, kwargs
        params.update(coerced)
        return signature.to_call(params)

    def _coerce(self, values: dict[str, Any]) -> dict[str, Any]:
        import pydantic

        model = self._model
        if model is None:
            # Not required: a call validates only the values that may need coercion.
            fields = {name: (hint, None) for name, hint in self._annotations.items()}
            model = self._model = pydantic.create_model(  # type: ignore[call-overload]  # fields built at run time
                f"{self._flow}-parameters",
                __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
                **fields,
            )
        try:
            validated = model.model_validate(values, context=None)
        except pydantic.ValidationError as exc:
            problems = [
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            ]
            raise ParameterTypeError(
                "Flow run received invalid parameters:\n - " + "\n - ".join(problems)
            ) from None
        return {name: getattr(validated, name) for name in values}
