"""Argument annotations, as in ``prefect.utilities.annotations``: ``unmapped`` (pass whole to
every mapped run), ``allow_failure`` (run even if this upstream failed), ``quote`` (neither
resolve nor look inside), ``opaque`` (resolve, but do not look inside)."""

from .._core import allow_failure as allow_failure
from .._core import fixup_module_metadata as _fixup_module_metadata
from .._core import opaque as opaque
from .._core import quote as quote
from .._core import unmapped as unmapped

__all__ = ("allow_failure", "opaque", "quote", "unmapped")

_fixup_module_metadata(__name__, globals())
