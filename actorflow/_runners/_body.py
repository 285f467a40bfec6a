"""What runs in a worker process: one task body, shipped as pickled bytes, answered as bytes.

The run's actor stays with its flow's supervisor; a worker only calls the function. The function
comes cloudpickled (unpickled once per worker and kept), the arguments pickled, and the outcome
goes back as ``(code, pickled value or exception)``. A body with a timeout runs on a helper thread
so that the worker can answer ``TIMEOUT`` at the deadline, measured from when the body starts.
"""

from __future__ import annotations

import contextvars
import pickle
import threading
import time
import traceback
import uuid
from typing import Any

# The outcome codes of actorflow._core.OK/ERR/TIMEOUT, and one more for a call whose arguments
# did not fit the function's signature (the body never ran, so retrying cannot help).
OK, ERR, TIMEOUT, BAD_CALL = 0, 1, 2, 4

_functions: dict[bytes, Any] = {}
_MAX_FUNCTIONS = 256


def dumps(obj: Any) -> bytes:
    """Pickle ``obj``: the C pickler first, cloudpickle (if installed) for what it cannot do."""
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        cloudpickle = _cloudpickle()
        if cloudpickle is None:
            raise
    data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def _cloudpickle() -> Any:
    try:
        import cloudpickle  # type: ignore[import-untyped]  # cloudpickle ships no type hints
    except ImportError:
        return None
    return cloudpickle


class _TaskName:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class RemoteRun:
    """Stands in for the run inside the worker, so that ``get_run_logger()`` works in a body."""

    __slots__ = ("_int_id", "name", "spec")
    is_flow = False
    parent = None
    flow = None

    def __init__(self, name: str, int_id: int, task_name: str) -> None:
        self.name = name
        self._int_id = int_id
        self.spec = _TaskName(task_name)

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(int=self._int_id)

    def label(self) -> str:
        return f"task run {self.name!r}"


def run_body(fn_bytes: bytes, call_bytes: bytes) -> tuple[int, bytes]:
    """Call the shipped function on the shipped arguments; ``(code, pickled outcome)``."""
    fn = _functions.get(fn_bytes)
    if fn is None:
        if len(_functions) >= _MAX_FUNCTIONS:
            _functions.clear()
        fn = _functions[fn_bytes] = pickle.loads(fn_bytes)
    args, kwargs, timeout, name, int_id, task_name = pickle.loads(call_bytes)
    from actorflow._core import current_run

    # The worker's stand-in for the run: what get_run_logger() reads of a run.
    token = current_run.set(RemoteRun(name, int_id, task_name))  # type: ignore[arg-type]  # a stand-in run
    try:
        if timeout is None:
            try:
                code, value = OK, fn(*args, **kwargs)
            except Exception as exc:
                code, value = ERR, exc
        else:
            code, value = _call_with_deadline(fn, args, kwargs, timeout)
    finally:
        current_run.reset(token)
    if code == OK:
        try:
            return OK, dumps(value)
        except Exception as exc:
            error = TypeError(
                f"The result of task run {name!r} (a {type(value).__name__}) cannot be pickled "
                f"to send it back from the worker: {type(exc).__name__}: {exc}"
            )
            return ERR, pickle.dumps(error)
    if code == ERR:
        return _error(value)
    return code, pickle.dumps(value)


def run_bodies(payloads: list[tuple[bytes, bytes]]) -> list[tuple[int, bytes, float]]:
    """Run several shipped bodies one after the other: ``(code, outcome, seconds)`` each."""
    answers = []
    clock = time.perf_counter
    for fn_bytes, call_bytes in payloads:
        start = clock()
        code, data = run_body(fn_bytes, call_bytes)
        answers.append((code, data, clock() - start))
    return answers


def _error(exc: BaseException) -> tuple[int, bytes]:
    code = BAD_CALL if _raised_by_call(exc) else ERR
    remote = "".join(traceback.format_exception(exc))
    try:
        exc.add_note(f"Traceback in the worker process:\n{remote}")
        return code, dumps(exc)
    except Exception:
        # An exception that cannot cross: send its type, message and traceback as text.
        stand_in = RuntimeError(f"{type(exc).__qualname__}: {exc}")
        stand_in.add_note(f"Traceback in the worker process:\n{remote}")
        return code, pickle.dumps(stand_in)


def _raised_by_call(exc: BaseException) -> bool:
    # A TypeError raised by the call itself, in the calling frame: the arguments did not fit.
    tb = exc.__traceback__
    return isinstance(exc, TypeError) and tb is not None and tb.tb_next is None


def _call_with_deadline(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
) -> tuple[int, Any]:
    # Python cannot stop a thread, so the body runs on a helper thread while this one waits
    # until the deadline. At the deadline the worker answers TIMEOUT and interrupts the body at
    # its next Python instruction (a blocking call such as sleep or I/O finishes first, in the
    # background; its result is dropped).
    from actorflow._core import call_with_deadline

    return call_with_deadline(fn, args, kwargs, timeout, _start_thread)


def _start_thread(work: Any) -> None:
    threading.Thread(
        target=contextvars.copy_context().run, args=(work,), name="actorflow-body", daemon=True
    ).start()
