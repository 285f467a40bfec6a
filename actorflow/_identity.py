"""Who a task is, the same in every process that loads the same code.

A task is its function's *import name* (``customers:load``, not just ``load``), its ``name=``, and
the values that make two tasks built from one function different: a ``functools.partial``'s bound
arguments, a closure's cells, a callable object's state. A script run as ``__main__`` in one
process and imported by its module name in another (a background worker) gets the same identity,
because ``__main__`` is named by the module name the script would be imported by.

The identity scopes cache records (two tasks with equal inputs never share a record) and makes
the ``task_key`` by which background workers match runs to tasks.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import types
from collections.abc import Callable
from typing import Any, final

from ._core import new_id

__all__ = ["TaskIdentity", "import_name", "task_identity"]

_MAIN_NAMES = ("__main__", "__mp_main__")


def import_name(module: str | None) -> str:
    """The name ``module`` is imported by; for a script's ``__main__``, the name it would have.

    ``python jobs.py`` gives ``jobs`` (``pkg.jobs`` when its folder is a package); ``python -m
    jobs`` gives ``jobs``; code typed at a prompt stays ``__main__``. A process started by
    ``multiprocessing`` loads the parent's script as ``__mp_main__``: it is named the same way.
    """
    if module not in _MAIN_NAMES:
        return module or "<unknown module>"
    main = sys.modules.get(module)
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name not in _MAIN_NAMES:
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if not path:
        return "__main__"
    folder, filename = os.path.split(os.path.abspath(path))
    parts = [os.path.splitext(filename)[0]]
    while os.path.exists(os.path.join(folder, "__init__.py")):
        folder, package = os.path.split(folder)
        parts.append(package)
    return ".".join(reversed(parts))


@final
class TaskIdentity:
    """What tells a task apart: ``where`` its function lives and the ``values`` bound into it.

    ``values`` are ``(label, value)`` pairs (``"partial argument 0"``, ``"closure variable
    'k'"``): the cache hashes them with its stable encoding and names the label when one cannot
    be hashed.
    """

    __slots__ = ("_source", "_target", "local_token", "name", "values", "where")

    def __init__(
        self, where: str, name: str, values: tuple[tuple[str, Any], ...], target: Any
    ) -> None:
        self.where = where
        self.name = name
        self.values = values
        self._target = target
        self._source: str | None = None
        #: A token unique to this identity object in this process (and never equal to one of
        #: another process): it stands for bound values that cannot be hashed stably.
        self.local_token = f"local:{new_id():032x}"

    def source(self) -> str:
        """The function's source (read on first use: it costs a file read)."""
        source = self._source
        if source is None:
            source = self._source = _source(self._target)
        return source

    def task_key(self, digest_values: Callable[[], str | None]) -> str:
        """``<short name>-<8 hex>``: stable across processes for the same code and values.

        ``digest_values()`` gives the values' stable digest, or ``None`` when they cannot be
        hashed; the key then leaves them out (a key must always exist; the cache refuses such a
        task on its own terms).
        """
        values = digest_values() if self.values else ""
        text = f"{self.where}\x00{self.name}\x00{values or ''}\x00{self.source()}"
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        short = self.where.rpartition(":")[2].rpartition(".")[2] or self.name
        return f"{short}-{digest[:8]}"


def task_identity(fn: Any, name: str) -> TaskIdentity:
    """The identity of a task made of ``fn`` and named ``name``."""
    values: list[tuple[str, Any]] = []
    target = _unwrap(fn, values)
    return TaskIdentity(_where(target), name, tuple(values), target)


def _unwrap(fn: Any, values: list[tuple[str, Any]]) -> Any:
    """Peel partials and bound methods off ``fn``, collecting what they bind; the function."""
    while True:
        if isinstance(fn, functools.partial):
            for index, arg in enumerate(fn.args):
                values.append((f"partial argument {index}", arg))
            for key, arg in sorted(fn.keywords.items()):
                values.append((f"partial argument {key!r}", arg))
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__  # the instance is an input of each run (``self``), not identity
        else:
            break
    if isinstance(fn, types.FunctionType):
        if fn.__closure__:
            for var, cell in zip(fn.__code__.co_freevars, fn.__closure__, strict=True):
                try:
                    contents = cell.cell_contents
                except ValueError:  # a cell not filled yet (a function referring to itself)
                    continue
                if contents is not fn:
                    values.append((f"closure variable {var!r}", contents))
    elif not isinstance(fn, (types.BuiltinFunctionType, type)) and callable(fn):
        values.append(("callable object", fn))  # its state decides what it computes
        return type(fn)
    return fn


def _where(target: Any) -> str:
    module = import_name(getattr(target, "__module__", None))
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    return f"{module}:{qualname}"


def _source(target: Any) -> str:
    try:
        return inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        if code is None:
            return ""
        return repr((code.co_code, code.co_consts, code.co_names))
