"""Public modules re-export from private ones; this makes objects report the public path."""

from __future__ import annotations

from typing import Any


def fixup_module_metadata(module_name: str, namespace: dict[str, Any]) -> None:
    """Point ``__module__`` of the classes and functions in ``__all__`` at ``module_name``.

    Tracebacks, reprs and pickles then say ``actorflow.futures.TaskFuture``, not a private path.
    Only objects still reporting a private module are changed, so the first public module that
    exports an object names it.
    """
    for name in namespace.get("__all__", ()):
        obj = namespace.get(name)  # lazily imported names are not there yet
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.startswith("actorflow._"):
            try:
                obj.__module__ = module_name
            except (AttributeError, TypeError):  # builtins and some C types refuse
                continue
