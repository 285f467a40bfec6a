"""Task runners: where the sync bodies of submitted task runs execute.

``DaskTaskRunner`` needs the ``dask`` extra and is imported on first use, so importing this
module never imports ``distributed``; ``ProcessPoolTaskRunner`` is imported on first use too,
so that a script that never uses processes does not pay for importing ``multiprocessing``.
"""

from typing import TYPE_CHECKING, Any

from ._core import TaskRunner as TaskRunner
from ._core import ThreadPoolTaskRunner as ThreadPoolTaskRunner
from ._core import fixup_module_metadata as _fixup_module_metadata

if TYPE_CHECKING:
    from ._runners._dask import DaskTaskRunner as DaskTaskRunner
    from ._runners._process import ProcessPoolTaskRunner as ProcessPoolTaskRunner

__all__ = ("DaskTaskRunner", "ProcessPoolTaskRunner", "TaskRunner", "ThreadPoolTaskRunner")


def __getattr__(name: str) -> Any:
    if name == "ProcessPoolTaskRunner":
        from ._runners._process import ProcessPoolTaskRunner

        globals()[name] = ProcessPoolTaskRunner
        _fixup_module_metadata(__name__, {"__all__": (name,), name: ProcessPoolTaskRunner})
        return ProcessPoolTaskRunner
    if name == "DaskTaskRunner":
        try:
            from ._runners._dask import DaskTaskRunner
        except ImportError as exc:
            raise ImportError(
                "DaskTaskRunner needs Dask's distributed scheduler, which is not installed: "
                f'pip install "actorflow[dask]" ({exc})'
            ) from exc
        globals()["DaskTaskRunner"] = DaskTaskRunner
        _fixup_module_metadata(__name__, {"__all__": (name,), name: DaskTaskRunner})
        return DaskTaskRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


_fixup_module_metadata(__name__, globals())
