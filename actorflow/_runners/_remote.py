"""What the process and Dask runners share: the run stays here, only its body travels.

Each submitted run is driven by a :class:`~actorflow._core.Stepper` in this process: its state
machine, retries, cache, hooks, upstream waits and futures passed between tasks work exactly as
on the thread runner. When the engine invokes the body, the runner pickles the function (once per
function) and the arguments, ships them to a worker and later completes the engine's step with the
outcome, from a small coordinator pool of threads. No thread waits for a remote body.

What follows from running only the body elsewhere: hooks, cache reads and writes and retry
conditions run in the flow's process; the results of upstream runs pass through it on their way
to a downstream body; inside a body, ``get_run_logger()`` works (records go to the worker's
logging) but ``print`` is not redirected by ``log_prints`` and ``.submit()`` has no flow to
submit to. A body already running elsewhere is not cancelled with its flow, as with threads.
"""

from __future__ import annotations

import io
import pickle
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from .._core import (
    CRASH,
    ERR,
    CrashedRun,
    Stepper,
    TaskRun,
    TaskRunner,
    WorkerPool,
    runtime,
)
from ._body import BAD_CALL, dumps

Done = Callable[[tuple[int, Any]], None]
#: What a remote runner ships per run: the pickled function and the pickled
#: ``(args, kwargs, timeout, run name, run id, task name)``; both go to
#: :func:`._body.run_body`.
Payload = tuple[bytes, bytes]
_MAX_FUNCTIONS = 512


class RemoteTaskRunner(TaskRunner):
    """Base of runners that execute sync task bodies in other processes.

    Subclasses implement :meth:`_open`, :meth:`_ship` and :meth:`_close`; :meth:`_ship` must
    arrange for :meth:`complete` (or :meth:`crash`) to be called once per payload.
    """

    #: Coordinator threads: they complete engine steps and run hooks and cache I/O.
    coordinator_threads = 4

    def __init__(self) -> None:
        self._pool: WorkerPool | None = None
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        # id(fn) -> (fn, its pickle): each function is pickled once per runner.
        self._functions: dict[int, tuple[Any, bytes]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._pool is not None:
            raise RuntimeError("This task runner is already started")
        self._pool = runtime.new_pool(self.coordinator_threads, f"actorflow-{self.name}")
        try:
            self._open()
        except BaseException:
            self._pool.shutdown()
            self._pool = None
            raise

    def submit(self, run: TaskRun) -> None:
        pool = self._pool
        if pool is None:
            raise RuntimeError("Task runner is not started")
        with self._cond:
            self._active += 1
        run.add_done_callback(self._ended)
        Stepper.begin(run, self._start_body, pool)

    def _ended(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def shutdown(self, wait: bool = True) -> None:
        """Wait until every run's engine has finished (hooks included), then release; without
        ``wait`` (the flow was interrupted), release at once."""
        pool = self._pool
        if pool is None:
            return
        if wait:
            with self._cond:
                while self._active:
                    self._cond.wait()
        try:
            self._close(wait)
        finally:
            self._pool = None
            self._functions.clear()
            pool.shutdown(wait=wait)

    # -- the body's round trip ------------------------------------------------------------------
    def _start_body(self, run: TaskRun, op: tuple[Any, ...], done: Done) -> None:
        if self.withdrawn(run, done):
            return
        fn, args, kwargs = op[1], op[2], op[3]
        try:
            payload = self._payload(run, fn, args, kwargs)
        except _CannotShip as exc:
            done((ERR, exc.error))
            return
        try:
            self._ship(run, payload, done)
        except Exception as exc:  # the pool or cluster refused the work
            self.crash(done, f"{self.name} could not start the task body", exc)

    def _payload(
        self, run: TaskRun, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Payload:
        cached = self._functions.get(id(fn))
        if cached is not None and cached[0] is fn:
            fn_bytes = cached[1]
        else:
            try:
                fn_bytes = _cloudpickle_dumps(fn)
            except Exception as exc:
                raise _CannotShip(
                    TypeError(
                        f"The function of task {run.spec.name!r} cannot be pickled, so "
                        f"{type(self).__name__} cannot send it to a worker: "
                        f"{type(exc).__name__}: {exc}"
                    )
                ) from None
            if len(self._functions) >= _MAX_FUNCTIONS:
                self._functions.clear()
            self._functions[id(fn)] = (fn, fn_bytes)
        call = (args, kwargs, run.spec.timeout, run.name, run._int_id, run.spec.name)
        try:
            call_bytes = dumps_for_worker(call)
        except Exception:
            raise _CannotShip(self._unpicklable_argument(run, args, kwargs)) from None
        return fn_bytes, call_bytes

    def _unpicklable_argument(
        self, run: TaskRun, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TypeError:
        try:
            parameters = run.spec.bind(args, kwargs, False)
        except Exception:
            parameters = {**{f"#{i}": a for i, a in enumerate(args)}, **kwargs}
        for name, value in parameters.items():
            try:
                dumps_for_worker(value)
            except Exception as exc:
                return TypeError(
                    f"Task run argument {name!r} of {run.label()} (a {type(value).__name__}) "
                    f"cannot be pickled, so {type(self).__name__} cannot send it to a worker "
                    f"process: {type(exc).__name__}: {exc}"
                )
        return TypeError(f"The arguments of {run.label()} cannot be pickled")

    def withdrawn(self, run: TaskRun, done: Done) -> bool:
        """Whether the body of ``run``, waiting here to be shipped, must not start: the run was
        cancelled meanwhile (its flow or its future) and has ended Cancelled."""
        if not run.cancel_unstarted_body():
            return False
        done((CRASH, CrashedRun("its body never started")))  # dropped: the run has ended
        return True

    def complete(self, done: Done, code: int, data: bytes) -> None:
        """Hand a worker's ``(code, bytes)`` answer to the run, on a coordinator thread."""
        pool = self._pool
        if pool is None:  # pragma: no cover - shutdown waits for every run first
            return
        pool.submit(_finish, done, code, data)

    def complete_here(self, done: Done, code: int, data: bytes) -> None:
        """Like :meth:`complete`, on this thread, which must be a coordinator thread."""
        _finish(done, code, data)

    def crash(self, done: Done, what: str, exc: BaseException | None) -> None:
        """The body was lost with its worker: the run ends Crashed (or is retried)."""
        reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        error = CrashedRun(f"Task run crashed: {what}{reason}")
        pool = self._pool
        if pool is None:  # pragma: no cover
            return
        pool.submit(done, (CRASH, error))

    # -- what subclasses provide ----------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _ship(self, run: TaskRun, payload: Payload, done: Done) -> None:
        raise NotImplementedError

    def _close(self, wait: bool) -> None:
        raise NotImplementedError


class _CannotShip(Exception):
    def __init__(self, error: TypeError) -> None:
        self.error = error


def _finish(done: Done, code: int, data: bytes) -> None:
    try:
        value = pickle.loads(data)
    except Exception as exc:
        code = ERR
        value = RuntimeError(
            f"The outcome of the task body could not be unpickled here: {type(exc).__name__}: {exc}"
        )
    if code == BAD_CALL:
        code, value = ERR, _as_call_error(value)
    done((code, value))


def _as_call_error(exc: BaseException) -> BaseException:
    # Re-raise here so that the engine sees an error raised by the call itself (wrong
    # arguments): the run fails at once instead of retrying. (The worker's traceback may have
    # come along when tblib, which distributed installs, pickles tracebacks: drop it.)
    try:
        raise exc.with_traceback(None)
    except BaseException as raised:
        return raised


def _cloudpickle_dumps(obj: Any) -> bytes:
    try:
        import cloudpickle  # type: ignore[import-untyped]  # cloudpickle ships no type hints
    except ImportError:
        buffer = io.BytesIO()
        _ByDefinition(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()
    data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data


class _ByDefinition(pickle.Pickler):
    """Plain pickle, and the function of a task or flow by the definition's name.

    ``@task`` puts the task where its function was (``jobs.load`` is the Task), so pickle
    cannot find the function by its name; it is shipped as "the function of ``jobs.load``",
    which a worker finds by importing the module. A worker of the process runner imports the
    script that started it as its ``__main__``, so tasks defined in a script need no
    cloudpickle.
    """

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is types.FunctionType:
            fn: types.FunctionType = obj
            module = sys.modules.get(fn.__module__)
            if module is not None and "<" not in fn.__qualname__:
                holder: Any = module
                for part in fn.__qualname__.split("."):
                    holder = getattr(holder, part, None)
                if getattr(holder, "_unbound_fn", None) is fn:
                    return _definition_function, (fn.__module__, fn.__qualname__)
        return NotImplemented


def _definition_function(module: str, qualname: str) -> Any:
    import importlib

    holder: Any = importlib.import_module(module)
    for part in qualname.split("."):
        holder = getattr(holder, part)
    return holder._unbound_fn


def dumps_for_worker(obj: Any) -> bytes:
    """Pickle ``obj`` for a worker: things defined in ``__main__`` (which a worker may not
    have) go by value, through cloudpickle, as Dask does."""
    data = dumps(obj)
    if b"__main__" in data:
        return _cloudpickle_dumps(obj)
    return data
