"""Interrupting sync code that runs on another thread, as far as Python allows.

Python cannot stop a thread; it can only make a thread raise an exception at its next Python
instruction (``PyThreadState_SetAsyncExc``): a blocking C call (``time.sleep``, a socket read)
finishes first. :class:`Interruptible` wraps one call so that another thread can interrupt it
that way, and never outside it: the exception is of a class of the call's own (so a nested call
never mistakes another's interrupt for its own), it is only sent while the call runs, and one
still pending when the call ends is withdrawn before control leaves the wrapper.

Sync flow deadlines, sync task deadlines and task bodies with deadlines in worker processes all
go through here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, final

from ._exceptions import Interrupt

T = TypeVar("T")

__all__ = ["Interruptible"]


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    import ctypes  # here: only calls with a deadline need it

    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )


@final
class Interruptible:
    """One call that another thread may interrupt. Use each instance for one call."""

    __slots__ = ("_inside", "_lock", "_thread", "interrupted", "signal")

    def __init__(self, base: type[Interrupt] = Interrupt) -> None:
        #: The exception class raised into this call alone.
        self.signal: type[Interrupt] = type(base.__name__, (base,), {})
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._inside = False
        #: Whether :meth:`interrupt` reached the call while it ran.
        self.interrupted = False

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` on this thread; raises :attr:`signal` if it was interrupted."""
        with self._lock:
            self._thread = threading.get_ident()
            self._inside = True
        try:
            return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._inside = False
                if self.interrupted:
                    # Sent while the call ran, perhaps not raised yet: withdraw it, so that it
                    # cannot go off later, outside the call.
                    _set_async_exc(self._thread, None)

    def interrupt(self) -> bool:
        """From another thread: make the call raise :attr:`signal` at its next instruction.
        ``False`` if it is not running (not started, or already over) or was interrupted
        already: a call is interrupted once."""
        with self._lock:
            if self.interrupted or not self._inside or self._thread is None:
                return False
            self.interrupted = True
            _set_async_exc(self._thread, self.signal)
            return True
