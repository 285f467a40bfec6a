"""Checks of ``@task`` and ``@flow`` options, made when the decorator runs.

Each check names the task or flow (``owner``, e.g. ``"task 'load'"``), the option and what is
allowed, so a mistake fails where it is written rather than in every run. The runtime core
receives options already checked.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable
from typing import Any

from ._core import ReservedArgumentError, Signature

__all__ = [
    "check_hooks",
    "check_not_method_wrapper",
    "check_reserved",
    "check_retries",
    "check_retry_delay",
    "check_run_name",
    "check_timeout",
]

#: Prefect's limit on a list of retry delays.
MAX_RETRY_DELAYS = 50


def _describe(value: Any) -> str:
    return f"{value!r} of type {type(value).__name__}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_retries(owner: str, retries: Any) -> int:
    """``retries``: a whole number >= 0 (``None`` is 0)."""
    if retries is None:
        return 0
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"{owner}: retries must be a whole number >= 0, got {_describe(retries)}")
    return retries


def _check_seconds(owner: str, option: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{owner}: {option} must be a finite number of seconds >= 0, got {_describe(value)}"
        )
    return float(value)


def check_retry_delay(owner: str, delay: Any, jitter: Any) -> tuple[Any, float | None]:
    """``retry_delay_seconds`` (seconds, a list of them, or a callable giving a list) and
    ``retry_jitter_factor`` (a number >= 0); returns them normalised."""
    if jitter is not None:
        if not _is_number(jitter) or not math.isfinite(jitter) or jitter < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        jitter = float(jitter)
    if delay is None or callable(delay):
        return delay, jitter
    if _is_number(delay):
        return _check_seconds(owner, "retry_delay_seconds", delay), jitter
    if isinstance(delay, (list, tuple)):
        if len(delay) > MAX_RETRY_DELAYS:
            raise ValueError(
                f"Can not configure more than {MAX_RETRY_DELAYS} retry delays per task."
            )
        return [_check_seconds(owner, "each of retry_delay_seconds", d) for d in delay], jitter
    raise TypeError(
        f"{owner}: Invalid `retry_delay_seconds` provided; must be an int, float, list or "
        f"callable. Received type {type(delay)}"
    )


def check_timeout(owner: str, timeout: Any) -> float | None:
    """``timeout_seconds``: a positive, finite number of seconds; ``None`` or 0 for none."""
    if timeout is None or (_is_number(timeout) and timeout == 0):
        return None
    if not _is_number(timeout) or not math.isfinite(timeout) or timeout < 0:
        raise ValueError(
            f"{owner}: timeout_seconds must be a positive, finite number of seconds (or None), "
            f"got {_describe(timeout)}"
        )
    return float(timeout)


_FIELD_ROOT = re.compile(r"[^.\[]*")


def check_run_name(kind: str, owner: str, template: Any, signature: Signature) -> None:
    """``task_run_name`` / ``flow_run_name``: a string or a callable; a string template may only
    name the function's parameters (``"train on {dataset.name}"``)."""
    option = f"{kind}_run_name"
    if template is None or callable(template):
        return
    if not isinstance(template, str):
        raise TypeError(
            f"Expected string or callable for {option!r}; got {type(template).__name__} instead."
        )
    params = signature.sig.parameters
    open_kwargs = signature.var_kw is not None
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as exc:
        raise ValueError(f"{owner}: {option} {template!r} is not a valid template: {exc}") from None
    for field in fields:
        root = _FIELD_ROOT.match(field).group()  # type: ignore[union-attr]  # always matches
        if root == "" or root.isdigit():
            raise ValueError(
                f"{owner}: {option} {template!r} has a positional field {{{field}}}; name a "
                f"parameter instead (its parameters: {', '.join(params) or 'none'})"
            )
        if root not in params and not open_kwargs:
            raise ValueError(
                f"{owner}: {option} {template!r} refers to {root!r}, which is not one of its "
                f"parameters ({', '.join(params) or 'none'})"
            )


def check_hooks(kind: str, option: str, hooks: Iterable[Any] | None) -> tuple[Any, ...]:
    """Validate a hooks option: a list of callables. Messages follow Prefect's."""
    if hooks is None:
        return ()
    example = f"\n\n@{kind}({option}=[hook1, hook2])\ndef my_{kind}():\n\tpass"
    if callable(hooks) or not isinstance(hooks, Iterable):
        raise TypeError(
            f"Expected iterable for {option!r}; got {type(hooks).__name__} instead. Please "
            f"provide a list of hooks to {option!r}:{example}"
        )
    hooks = tuple(hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(
                f"Expected callables in {option!r}; got {type(hook).__name__} instead. Please "
                f"provide a list of hooks to {option!r}:{example}"
            )
    return hooks


def check_not_method_wrapper(kind: str, fn: Any) -> None:
    if isinstance(fn, classmethod):
        raise TypeError(f"@classmethod should be applied on top of @{kind}")
    if isinstance(fn, staticmethod):
        raise TypeError(f"@staticmethod should be applied on top of @{kind}")


def check_reserved(sig: Signature) -> None:
    for reserved in ("wait_for", "return_state"):
        if reserved in sig.sig.parameters:
            raise ReservedArgumentError(
                f"{reserved!r} is a reserved argument name and cannot be used."
            )
