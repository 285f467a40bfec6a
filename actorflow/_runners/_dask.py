"""``DaskTaskRunner``: sync task bodies on a Dask cluster (the ``actorflow[dask]`` extra).

The runs stay in the flow's process, driven by the same engine as on threads, so states,
retries, timeouts, caching, ``wait_for`` and futures passed between tasks behave as on every other
runner. Only bodies go to Dask, each as its own Dask task: a top-level function with the pickled
function and arguments, an explicit key, ``pure=False`` and no Dask-level retries.

Two threads per runner talk to the synchronous ``Client``: a submitter that sends the bodies
queued since its last call in one ``Client.map`` (one scheduler message per batch, not per run)
and caps the bodies in flight, and a watcher that takes finished bodies in batches and gathers
their outcomes in one request per batch. No thread waits for one body. To learn that a body
finished, the runner asks each future, through Dask's public ``add_done_callback``, to post its
key to the watcher. (Replacing the future state's private completion event instead saved about
15% of the client's CPU per task, not worth depending on Dask's internals.)

A worker that dies mid-task (``KilledWorker``), a lost connection or a cancelled key ends the run
Crashed, or retries it if it has retries left. On a cluster the runner starts itself, the
scheduler is told not to re-run a task whose worker died (``allowed-failures: 0``), so that our
retry policy decides; a scheduler given by ``address`` keeps its own setting.
Timeouts are measured from when the body starts on its worker; at the deadline the run is
TimedOut and the worker thread is freed (the body is stopped at its next Python instruction).

``LocalCluster(processes=True)`` spawns worker processes: scripts need a ``__main__`` guard.
"""

from __future__ import annotations

import importlib
import queue
import threading
import time
from collections import deque
from typing import Any

import attrs
import dask
import distributed as _distributed

from .._core import TaskRun
from ._body import run_body
from ._remote import Done, Payload, RemoteTaskRunner

# distributed's client API is only partly typed; this module treats it as Any.
distributed: Any = _distributed

#: Bodies in flight on the cluster at once per runner; the rest wait here, already Running.
DEFAULT_MAX_IN_FLIGHT = 10_000
#: While other bodies run, finished ones wait up to this long for company before one gather.
LINGER_SECONDS = 0.005
LINGER_KEYS = 256


@attrs.frozen
class DaskRunnerStatistics:
    queued: int
    in_flight: int
    submitted: int
    batches: int


class DaskTaskRunner(RemoteTaskRunner):
    """Runs sync task bodies on a Dask cluster.

    With no ``address``, each flow run starts a cluster of ``cluster_class`` (default
    :class:`distributed.LocalCluster`) with ``cluster_kwargs`` and closes it at the end; with an
    ``address``, it connects to that scheduler; with a ``cluster`` object already running, it
    connects to it (sharing its event loop) and leaves it running. ``client_kwargs`` go to
    :class:`distributed.Client` (which is not made the default client unless they say so),
    ``adapt_kwargs`` (if given) to ``cluster.adapt``.
    """

    name = "dask"

    def __init__(
        self,
        address: str | None = None,
        cluster_class: str | type[Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        *,
        cluster: Any = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if (address is not None or cluster is not None) and (
            cluster_class is not None or cluster_kwargs
        ):
            raise ValueError(
                "DaskTaskRunner takes either an `address` or a `cluster` to connect to, or a "
                "`cluster_class` and `cluster_kwargs` to start a cluster, not both"
            )
        if address is not None and cluster is not None:
            raise ValueError("DaskTaskRunner takes an `address` or a `cluster`, not both")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        super().__init__()
        self.address = address
        self.cluster = cluster
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {}) if adapt_kwargs is not None else None
        self.max_in_flight = max_in_flight
        self._client: Any = None
        self._cluster: Any = None
        self._outbox: deque[tuple[str, Payload, Done]] = deque()
        # key -> (Dask future, the run's completion): bodies on the cluster.
        self._waiting: dict[str, tuple[Any, Done]] = {}
        # Keys of finished bodies, posted from the client's event loop; None stops the watcher.
        self._inbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._flow = threading.Condition(threading.Lock())
        self._in_flight = 0  # bodies sent to the scheduler and not yet answered
        self._closing = False
        self._submitted = 0
        self._batches = 0
        self._threads: list[threading.Thread] = []

    def duplicate(self) -> DaskTaskRunner:
        return type(self)(
            address=self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            client_kwargs=self.client_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            cluster=self.cluster,
            max_in_flight=self.max_in_flight,
        )

    @property
    def client(self) -> Any:
        """The runner's Dask client (while the runner is started)."""
        if self._client is None:
            raise RuntimeError("Task runner is not started")
        return self._client

    def statistics(self) -> DaskRunnerStatistics:
        with self._flow:
            return DaskRunnerStatistics(
                queued=len(self._outbox),
                in_flight=self._in_flight,
                submitted=self._submitted,
                batches=self._batches,
            )

    # -- lifecycle ------------------------------------------------------------------------------
    def _open(self) -> None:
        client_kwargs = {"set_as_default": False, **self.client_kwargs}
        if self.address is not None or self.cluster is not None:
            target = self.address if self.address is not None else self.cluster
            self._client = distributed.Client(target, **client_kwargs)
        else:
            cluster_class = _resolve_class(self.cluster_class)
            # A killed worker's task is not re-run by the scheduler: our retries decide.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = cluster_class(**self.cluster_kwargs)
            try:
                if self.adapt_kwargs is not None:
                    self._cluster.adapt(**self.adapt_kwargs)
                self._client = distributed.Client(self._cluster, **client_kwargs)
            except BaseException:
                self._cluster.close()
                self._cluster = None
                raise
        self._closing = False
        for target, role in ((self._submit_loop, "submitter"), (self._watch_loop, "watcher")):
            thread = threading.Thread(target=target, name=f"actorflow-dask-{role}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _close(self, wait: bool) -> None:
        with self._flow:
            self._closing = True
            self._flow.notify_all()
        self._inbox.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        self._waiting.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    # -- shipping bodies ------------------------------------------------------------------------
    def _ship(self, run: TaskRun, payload: Payload, done: Done) -> None:
        key = f"{run.spec.name}-{run.id.hex}-{run.run_count}"
        with self._flow:
            if self._closing:
                raise RuntimeError("the Dask task runner is shutting down")
            self._outbox.append((key, payload, done))
            if len(self._outbox) == 1:
                self._flow.notify_all()

    def _submit_loop(self) -> None:
        flow = self._flow
        while True:
            with flow:
                while not self._closing and (
                    not self._outbox or self._in_flight >= self.max_in_flight
                ):
                    flow.wait()
                if self._closing:
                    return
                room = self.max_in_flight - self._in_flight
                outbox = self._outbox
                batch = [outbox.popleft() for _ in range(min(room, len(outbox)))]
                self._in_flight += len(batch)
                self._submitted += len(batch)
                self._batches += 1
            self._send(batch)

    def _send(self, batch: list[tuple[str, Payload, Done]]) -> None:
        client = self._client
        assert client is not None
        try:
            futures = client.map(
                run_body,
                [payload[0] for _, payload, _ in batch],
                [payload[1] for _, payload, _ in batch],
                key=[key for key, _, _ in batch],
                pure=False,
                retries=0,
            )
        except Exception as exc:
            self._answered(len(batch))
            for _, _, done in batch:
                self.crash(done, "Dask did not accept its body", exc)
            return
        waiting = self._waiting
        for future, (key, _, done) in zip(futures, batch, strict=True):
            waiting[key] = (future, done)
        client.loop.add_callback(_watch_futures, futures, self._inbox)

    def _answered(self, count: int) -> None:
        with self._flow:
            self._in_flight -= count
            self._flow.notify_all()

    # -- receiving outcomes ---------------------------------------------------------------------
    def _watch_loop(self) -> None:
        inbox, waiting = self._inbox, self._waiting
        while True:
            keys = [inbox.get()]
            while not inbox.empty() and keys[-1] is not None:
                keys.append(inbox.get())
            if keys[-1] is not None and len(keys) < LINGER_KEYS and self._in_flight > len(keys):
                # Other bodies are running: wait a moment for more to finish, so that one
                # gather request fetches many outcomes (each request costs the scheduler).
                deadline = time.monotonic() + LINGER_SECONDS
                while len(keys) < LINGER_KEYS and keys[-1] is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        keys.append(inbox.get(timeout=remaining))
                    except queue.Empty:
                        break
            entries = []
            for key in keys:
                if key is None:
                    return
                entry = waiting.pop(key, None)
                if entry is not None:  # None: posted twice (the state was reset in between)
                    entries.append((key, *entry))
            if entries:
                self._receive(entries)

    def _receive(self, entries: list[tuple[str, Any, Done]]) -> None:
        client = self._client
        assert client is not None
        finished, answered = [], 0
        for key, future, done in entries:
            status = future.status
            if status == "finished":
                finished.append((future, done))
            elif status == "pending":  # reset by the scheduler after finishing: wait again
                self._waiting[key] = (future, done)
                client.loop.add_callback(_watch_futures, [future], self._inbox)
                continue
            elif status == "error":
                self.crash(done, "its Dask task failed", _exception_of(future))
            else:
                self.crash(done, f"its Dask task was {status}", None)
            answered += 1
        if finished:
            try:
                outcomes = client.gather([future for future, _ in finished], direct=True)
            except Exception:
                outcomes = [_gather_one(client, future) for future, _ in finished]
            for (_, done), outcome in zip(finished, outcomes, strict=True):
                if isinstance(outcome, _Lost):
                    self.crash(done, "Dask lost its result", outcome.error)
                else:
                    self.complete(done, outcome[0], outcome[1])
        self._answered(answered)

    def __repr__(self) -> str:
        if self.address is not None:
            where = f"address={self.address!r}"
        else:
            where = f"cluster={self.cluster!r}" if self.cluster is not None else "LocalCluster"
        return f"DaskTaskRunner({where})"


def _watch_futures(futures: list[Any], inbox: queue.SimpleQueue[str | None]) -> None:
    """On the client's event loop (one thread, so Dask makes its callback executor once):
    arrange for each future's key to be posted to ``inbox`` once it is finished, erred or
    cancelled. Dask runs the callback on a thread of its own, which only puts to the queue."""
    for future in futures:
        future.add_done_callback(lambda done: inbox.put(done.key))


@attrs.frozen
class _Lost:
    error: BaseException


def _gather_one(client: Any, future: Any) -> Any:
    try:
        return client.gather(future)
    except Exception as exc:
        return _Lost(exc)


def _exception_of(future: Any) -> BaseException | None:
    try:
        error: BaseException | None = future.exception(timeout=5)
        return error
    except Exception as exc:
        return exc


def _resolve_class(cluster_class: str | type[Any] | None) -> Any:
    if cluster_class is None:
        return distributed.LocalCluster
    if isinstance(cluster_class, str):
        module, _, name = cluster_class.rpartition(".")
        if not module:
            raise ValueError(
                f"cluster_class must be a class or an import path like "
                f"'distributed.LocalCluster', got {cluster_class!r}"
            )
        return getattr(importlib.import_module(module), name)
    return cluster_class
