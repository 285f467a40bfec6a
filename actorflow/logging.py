"""Loggers, as in ``prefect.logging``: ``get_run_logger()`` inside runs, ``get_logger()``."""

import logging as _logging

from ._core import fixup_module_metadata as _fixup_module_metadata
from ._core import get_run_logger as get_run_logger

__all__ = ("get_logger", "get_run_logger")


def get_logger(name: str | None = None) -> _logging.Logger:
    """The ``actorflow`` logger, or its child ``actorflow.<name>``."""
    return _logging.getLogger("actorflow" if name is None else f"actorflow.{name}")


_fixup_module_metadata(__name__, globals())
