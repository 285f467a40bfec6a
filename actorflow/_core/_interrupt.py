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

from ._exceptions import Interrupt, TaskDeadlineInterrupt

T = TypeVar("T")

__all__ = ["Interruptible", "call_with_deadline"]

# The codes of an INVOKE outcome (see ``_drive``), for the deadline call below.
_OK, _ERR, _TIMEOUT = 0, 1, 2


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


def _wait(done: threading.Event, timeout: float) -> bool:
    return done.wait(timeout)


def call_with_deadline(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float,
    start: Callable[[Callable[[], None]], Any],
    release: Callable[[], None] | None = None,
    wait: Callable[[threading.Event, float], bool] = _wait,
) -> tuple[int, Any]:
    """Call ``fn`` on another thread (``start(work)`` hands it to one) and wait for it until the
    deadline: ``(OK, value)``, ``(ERR, exception)``, or ``(TIMEOUT, timeout)``, in which case
    the call is interrupted at its next Python instruction (a blocking call it is in finishes
    first, and nothing after it runs). ``release`` is called once the call is over, whenever
    that is; ``wait(event, timeout)`` waits for it. An interrupt (``KeyboardInterrupt``...) in
    the call is raised here."""
    done = threading.Event()
    box: list[tuple[int, Any]] = []
    body = Interruptible(TaskDeadlineInterrupt)

    def work() -> None:
        try:
            box.append((_OK, body.call(fn, *args, **kwargs)))
        except body.signal:
            pass  # past the deadline: the waiting thread answered TIMEOUT already
        except BaseException as exc:  # delivered to the waiting thread
            box.append((_ERR, exc))
        finally:
            done.set()
            if release is not None:
                release()

    try:
        start(work)
    except BaseException:
        if release is not None:
            release()
        raise
    if not wait(done, timeout) or not box:
        body.interrupt()
        return _TIMEOUT, timeout
    outcome, value = box[0]
    if outcome == _ERR and not isinstance(value, Exception):
        raise value
    return outcome, value
