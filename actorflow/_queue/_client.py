"""The producing side: ``Task.delay`` and the futures it returns.

``delay`` checks and pickles the arguments on the caller's thread (a bad argument fails there,
named, and nothing is queued), then hands the run to this process's *sender* thread, which
writes every run handed to it meanwhile in one batch. So ``delay`` never waits for I/O, from
sync code, asyncio or trio alike. A future's ``wait``/``result`` first waits for that write
(raising its error if it failed); runs handed over are also written before the interpreter
exits. A *watcher* thread learns which runs of this process ended (the broker tells each
producer, keyed by its ``reply`` token), so waiting costs no polling of records.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Generic, Protocol, TypeVar, final

from .._core import (
    State,
    StateType,
    TaskSpec,
    TransitionEvent,
    new_id,
    observers,
    runtime,
)
from ._broker import DEFAULT_SEND_TIMEOUT, Broker, NewRun, QueueSettings, Record, settings
from ._brokers import broker


class QueuedTask(Protocol):
    """What the queue needs of a task (a ``Task``, which sits above the queue: ``Task.delay``
    and ``Task.serve`` call down into it)."""

    @property
    def task_key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> TaskSpec: ...


__all__ = [
    "BackgroundTaskFuture",
    "BrokerUnavailable",
    "Client",
    "client",
    "close_clients",
    "delay_runs",
    "dump_arguments",
]

logger = logging.getLogger("actorflow.task_worker")

R = TypeVar("R")


# -- arguments ----------------------------------------------------------------------------------
def _dumps(obj: Any) -> bytes:
    """Pickle, by value (cloudpickle, when installed) for what lives in ``__main__``."""
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception:
        data = b""
    if data and b"__main__" not in data:
        return data
    try:
        import cloudpickle  # type: ignore[import-untyped]  # cloudpickle ships no type hints
    except ImportError:
        if data:
            return data
        raise
    return cloudpickle.dumps(obj, protocol=5)  # type: ignore[no-any-return]  # bytes


def dump_arguments(
    task: QueuedTask, args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: list[str]
) -> bytes:
    """``(args, kwargs, wait_for)`` pickled; an argument that cannot be is named in the error."""
    task.spec.bind(args, kwargs)  # wrong arguments fail here, named (ParameterBindError)
    try:
        return _dumps((args, kwargs, wait_for))
    except Exception as exc:
        error = exc
    for name, value in task.spec.bind(args, kwargs).items():
        try:
            _dumps(value)
        except Exception as exc:
            raise TypeError(
                f"Cannot delay task {task.name!r}: its argument {name!r} ({type(value).__name__}) "
                f"cannot be serialized for a background run: {type(exc).__name__}: {exc}"
            ) from exc
    raise TypeError(f"Cannot delay task {task.name!r}: its arguments cannot be serialized: {error}")


def new_run_id() -> str:
    """32 hex digits: a run id of this process (``new_id``: its random half, then a counter,
    renewed in a forked child), the same a task run made here would have."""
    return f"{new_id():032x}"


# -- the client: sender and watcher ---------------------------------------------------------------
@final
class Client:
    """This process's producer for one broker: a sender thread and a watcher thread."""

    def __init__(self, target: Broker, send_timeout: float = DEFAULT_SEND_TIMEOUT) -> None:
        self.broker = target
        #: How long a run handed over may wait for the broker before its future fails.
        self.send_timeout = send_timeout
        self.reply = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._cond = threading.Condition()
        self._outbox: deque[NewRun] = deque()
        self._written: dict[str, BaseException | None] = {}  # ids handed over -> write error
        self._sender: threading.Thread | None = None
        self._watching: dict[str, threading.Event] = {}
        #: Records of runs of this process that ended, read in batches as they end, until a
        #: future takes its own (at most _KEPT of them: older ones are read again if needed).
        self._ended: dict[str, Record] = {}
        self._watcher: threading.Thread | None = None
        self._closed = False

    # sending
    def send(self, runs: Iterable[NewRun]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the background task client is closed (interpreter exit)")
            for run in runs:
                self._outbox.append(run)
                self._written[run.id] = _UNWRITTEN
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_loop, name="actorflow-queue-sender", daemon=True
                )
                self._sender.start()
            self._cond.notify_all()

    def _send_loop(self) -> None:
        # A batch that cannot be written (the broker is down or restarting) is tried again,
        # with what is handed over meanwhile, until each run has waited ``send_timeout``
        # seconds since its .delay(): then its future fails, naming the broker and the cause.
        batch: list[NewRun] = []
        pause = _FIRST_PAUSE
        failing: str | None = None
        while True:
            with self._cond:
                while not self._outbox and not batch and not self._closed:
                    self._cond.wait()
                if not self._outbox and not batch:
                    return
                batch += self._outbox
                self._outbox.clear()
            try:
                self.broker.enqueue(batch)
            except Exception as exc:
                cause = f"{type(exc).__name__}: {exc}"
                if failing is None:
                    logger.warning(
                        "background runs cannot be queued at %s (%s): trying again for up to "
                        "%g s (ACTORFLOW_QUEUE_SEND_TIMEOUT)",
                        self.broker.settings.url,
                        cause,
                        self.send_timeout,
                    )
                failing = cause
                batch = self._expire(batch, cause)
                with self._cond:
                    if batch and not self._outbox:
                        self._cond.wait(pause)
                pause = min(pause * 2, _LAST_PAUSE)
                continue
            if failing is not None:
                logger.warning("background runs are queued at %s again", self.broker.settings.url)
                failing = None
            pause = _FIRST_PAUSE
            with self._cond:
                for run in batch:
                    self._written[run.id] = None
                self._cond.notify_all()
            batch = []

    def _expire(self, batch: list[NewRun], cause: str) -> list[NewRun]:
        """Fail the runs of ``batch`` handed over ``send_timeout`` seconds ago or more; the rest,
        to try again."""
        oldest = time.time_ns() - int(self.send_timeout * 1e9)
        expired = [run for run in batch if run.scheduled_ns <= oldest]
        if not expired:
            return batch
        url = self.broker.settings.url
        error = BrokerUnavailable(
            f"the broker at {url} could not be reached within {self.send_timeout:g} s "
            f"(ACTORFLOW_QUEUE_SEND_TIMEOUT): {cause}"
        )
        logger.error("%d background run(s) were not queued: %s", len(expired), error)
        with self._cond:
            for run in expired:
                self._written[run.id] = error
            self._cond.notify_all()
        gone = {run.id for run in expired}
        return [run for run in batch if run.id not in gone]

    def written(self, run_id: str, timeout: float | None) -> bool:
        """Wait until the run is written to the broker; raise the error if writing failed."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._written.get(run_id) is _UNWRITTEN:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            error = self._written.get(run_id)
        if error is not None:
            raise BrokerUnavailable(f"background run {run_id} was not queued: {error}") from error
        return True

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every run handed over is written."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while self._outbox or any(v is _UNWRITTEN for v in self._written.values()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return
                self._cond.wait(remaining if remaining is not None else 0.1)

    def close(self) -> None:
        self.flush(timeout=30)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # watching
    def take_record(self, run_id: str) -> Record | None:
        """The final record of a run this process saw end, if it was read (and not taken)."""
        with self._cond:
            return self._ended.pop(run_id, None)

    def watch(self, run_id: str) -> threading.Event:
        """An event set once the run is known to be final."""
        with self._cond:
            event = self._watching.get(run_id)
            if event is None:
                event = self._watching[run_id] = threading.Event()
                if run_id in self._ended:
                    event.set()
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch_loop, name="actorflow-queue-watcher", daemon=True
                )
                self._watcher.start()
        return event

    def _watch_loop(self) -> None:
        failing = False
        while not self._closed:
            try:
                ended_now = self.broker.finished_since(self.reply, 0.5)
            except Exception as exc:
                if self._closed:
                    return
                if not failing:  # once per outage, not twice a second
                    logger.warning(
                        "could not learn which background runs ended (trying again): %s", exc
                    )
                failing = True
                time.sleep(0.5)
                continue
            failing = False
            if not ended_now:
                continue
            with self._cond:
                ended = self._ended
                ended.update(ended_now)
                while len(ended) > _KEPT:
                    del ended[next(iter(ended))]
                for run_id, _ in ended_now:
                    event = self._watching.pop(run_id, None)
                    if event is not None:
                        event.set()


class BrokerUnavailable(ConnectionError):
    """A background run could not be written to its broker within ``ACTORFLOW_QUEUE_SEND_TIMEOUT``
    seconds (the broker was down or unreachable): raised by its future's ``wait``/``result``."""


_FIRST_PAUSE, _LAST_PAUSE = 0.05, 1.0
_UNWRITTEN: Any = object()
_KEPT = 100_000
_clients: dict[QueueSettings, Client] = {}
_clients_lock = threading.Lock()


def client(config: QueueSettings | None = None) -> Client:
    config = config or settings()
    found = _clients.get(config)
    if found is None:
        with _clients_lock:
            found = _clients.get(config)
            if found is None:
                found = _clients[config] = Client(broker(config), config.send_timeout)
    return found


def _forget_clients() -> None:
    global _clients_lock
    _clients.clear()
    _clients_lock = threading.Lock()


def close_clients() -> None:
    """Write what is handed over and stop every client's threads (interpreter exit, tests)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for c in clients:
        try:
            c.close()
        except Exception as exc:  # at exit, report and go on
            logger.error("could not write background runs at exit: %s", exc)


runtime.at_fork(_forget_clients)
atexit.register(close_clients)


# -- delaying -----------------------------------------------------------------------------------
def delay_runs(
    task: QueuedTask, calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]], wait_for: Any
) -> list[BackgroundTaskFuture[Any]]:
    """Queue one run of ``task`` per ``(args, kwargs)``; their futures, at once."""
    waits = [_future_id(f) for f in (wait_for or ())]
    config = settings()
    target = client(config)
    key = task.task_key
    name = task.name
    runs = []
    now = time.time_ns()
    for args, kwargs in calls:
        # Futures of background runs among the arguments are waited for, then replaced by
        # their results, by the worker (as Prefect resolves them).
        inner = [f._id for f in _futures_in((args, kwargs))]
        payload = dump_arguments(task, args, kwargs, waits + inner if inner else waits)
        runs.append(NewRun(new_run_id(), key, name, payload, target.reply, now))
    target.send(runs)
    futures: list[BackgroundTaskFuture[Any]] = [
        BackgroundTaskFuture(r.id, config, _client=target) for r in runs
    ]
    emit = observers.get()
    if emit:
        for run in runs:
            state: State[Any] = State(
                StateType.SCHEDULED, "Scheduled", now, None, None, run_id=int(run.id, 16)
            )
            event = TransitionEvent(
                str(uuid.UUID(hex=run.id)), "task", name, key, None, None, None, state
            )
            for observer in emit:
                try:
                    observer(event)
                except Exception:
                    logger.exception("an observer of %s raised", name)
    return futures


def _futures_in(value: Any, depth: int = 0) -> list[BackgroundTaskFuture[Any]]:
    """Background futures inside ``value``: itself, or in lists, tuples, sets and dict values."""
    if isinstance(value, BackgroundTaskFuture):
        return [value]
    if depth > 8 or not isinstance(value, (list, tuple, set, frozenset, dict)):
        return []
    items = value.values() if isinstance(value, dict) else value
    found: list[BackgroundTaskFuture[Any]] = []
    for item in items:
        found += _futures_in(item, depth + 1)
    return found


def resolve_futures(value: Any, depth: int = 0) -> Any:
    """``value`` with the background futures inside it replaced by their results (the runs are
    final: the worker waited for them)."""
    if isinstance(value, BackgroundTaskFuture):
        return value.result()
    if depth > 8 or not isinstance(value, (list, tuple, set, frozenset, dict)):
        return value
    if isinstance(value, dict):
        return type(value)({k: resolve_futures(v, depth + 1) for k, v in value.items()})
    resolved = [resolve_futures(item, depth + 1) for item in value]
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(resolved)
    return value.__class__(*resolved)  # a named tuple


def _future_id(future: Any) -> str:
    if isinstance(future, BackgroundTaskFuture):
        return future._id
    raise TypeError(
        "wait_for of a background run takes futures of background runs (from .delay or "
        f"apply_async), got {type(future).__name__}"
    )


# -- futures ------------------------------------------------------------------------------------
def state_of(run_id: str, record: Record | None) -> State[Any]:
    if record is None:
        return State(StateType.SCHEDULED, "Scheduled", 0, None, None, run_id=int(run_id, 16))
    data: Any = None
    if record.final and record.data:
        try:
            data = pickle.loads(record.data)
        except Exception as exc:
            data = RuntimeError(f"the outcome of background run {run_id} cannot be loaded: {exc}")
    return State(
        StateType[record.type],
        record.name,
        record.timestamp_ns,
        record.message,
        data,
        run_id=int(run_id, 16),
    )


@final
class BackgroundTaskFuture(Generic[R]):
    """The future of a background run (``Task.delay``), usable from any process.

    ``state`` reads the run's shared record; ``wait`` and ``result`` wait for its final state.
    ``BackgroundTaskFuture(task_run_id)`` makes one from a run's id in any process that reaches
    the same queue.
    """

    __slots__ = ("_client", "_config", "_final", "_id")

    def __init__(
        self, task_run_id: Any, config: QueueSettings | None = None, *, _client: Any = None
    ) -> None:
        if not isinstance(task_run_id, uuid.UUID):
            try:
                task_run_id = uuid.UUID(str(task_run_id))
            except ValueError:
                raise ValueError(
                    f"{task_run_id!r} is not the id of a background task run (a UUID)"
                ) from None
        self._id: str = task_run_id.hex
        self._config = config or settings()
        self._client: Client | None = _client
        self._final: State[R] | None = None

    @property
    def task_run_id(self) -> uuid.UUID:
        return uuid.UUID(hex=self._id)

    def _broker(self) -> Broker:
        return broker(self._config)

    def _read(self) -> State[R]:
        state = self._final
        if state is not None:
            return state
        c = self._client
        if c is not None and c._written.get(self._id) is _UNWRITTEN:
            return state_of(self._id, None)  # still on its way: Scheduled
        record = c.take_record(self._id) if c is not None else None
        if record is None:
            target = self._broker()
            try:
                record = target.read([self._id])[0]
            except Exception as exc:
                raise BrokerUnavailable(
                    f"the state of background run {self._id} cannot be read from the broker at "
                    f"{target.settings.url}: {type(exc).__name__}: {exc}"
                ) from exc
        state = state_of(self._id, record)
        if record is not None and record.final:  # ended (NotReady, a Pending state, included)
            self._final = state
        return state

    @property
    def state(self) -> State[R]:
        """The run's state as last recorded (``Scheduled`` until a worker takes it)."""
        return self._read()

    def done(self) -> bool:
        """Whether the run has ended (its final state, or NotReady: an upstream run failed)."""
        if self._final is None:
            self._read()
        return self._final is not None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the run is final or ``timeout`` seconds pass; never raises on timeout."""
        if self._final is not None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        c = self._client
        if c is not None:
            if not c.written(self._id, timeout):
                return
            event = c.watch(self._id)
            if not event.is_set() and not self.done():
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                event.wait(remaining)
            self._read()
            return
        pause = 0.001
        while not self.done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            time.sleep(pause if remaining is None else min(pause, remaining))
            pause = min(pause * 2, 0.1)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> R:
        """The run's result, waiting up to ``timeout`` seconds; a failed run's exception is
        raised (returned with ``raise_on_failure=False``); :class:`TimeoutError` if the run
        is not final by then."""
        self.wait(timeout)
        state = self._read()
        if self._final is None:
            raise TimeoutError(
                f"Background task run {self.task_run_id} did not complete within "
                f"{timeout} seconds (it is {state.name})"
            )
        return state.value(raise_on_failure)

    async def wait_async(self) -> None:
        """:meth:`wait`, on a worker thread: the event loop goes on meanwhile (bound it with a
        cancel scope, ``anyio.fail_after``)."""
        import anyio

        await anyio.to_thread.run_sync(self.wait, None, abandon_on_cancel=True)

    async def result_async(self, raise_on_failure: bool = True) -> R:
        """:meth:`result`, on a worker thread (bound it with a cancel scope)."""
        import anyio

        value: R = await anyio.to_thread.run_sync(
            lambda: self.result(None, raise_on_failure), abandon_on_cancel=True
        )
        return value

    def __reduce__(self) -> Any:
        return (BackgroundTaskFuture, (self._id, self._config))

    def __repr__(self) -> str:
        return f"BackgroundTaskFuture({self._id!r})"
