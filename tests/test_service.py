"""The example service (examples/service/app.py) on a real uvicorn server on a loopback port,
talked to over HTTP with httpx: concurrent flows per request, a responsive loop while sync work
runs, and a shutdown mid-flow that leaves nothing behind."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import multiprocessing
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

import actorflow
from actorflow._core import runtime
from actorflow.runs import TransitionEvent

APP = Path(__file__).resolve().parent.parent / "examples" / "service" / "app.py"


def load_app() -> ModuleType:
    name = "actorflow_example_service"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, APP)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


class Watcher:
    """Records every transition, and sets an event when a run of a given name prefix first
    reaches a given state (Running, say)."""

    def __init__(self) -> None:
        self.recorder = actorflow.RunRecorder()
        self._waits: list[tuple[str, str, threading.Event]] = []

    def when(self, prefix: str, state: str = "Running") -> threading.Event:
        event = threading.Event()
        self._waits.append((prefix, state, event))
        return event

    def __call__(self, event: TransitionEvent) -> None:
        self.recorder(event)
        for prefix, state, reached in self._waits:
            if event.run_name.startswith(prefix) and event.state.name == state:
                reached.set()

    def finals(self, prefix: str) -> list[str]:
        return [
            e.state.name
            for e in list(self.recorder.events)
            if e.run_name.startswith(prefix) and e.state.is_final()
        ]


class Server:
    """uvicorn serving the example app on 127.0.0.1, on a thread of its own; the runs it makes
    report to ``watcher``. After it stops, ``tasks_left`` holds the tasks still on its loop."""

    def __init__(self, timeout_graceful_shutdown: int | None = None, **app: Any) -> None:
        self.watcher = Watcher()
        # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on the accepted connections (it
        # looks for it): without it, small responses wait 40 ms for delayed ACKs.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)  # connections wait in the backlog until the server accepts
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            load_app().create_app(**app),
            lifespan="on",
            log_level="warning",
            timeout_graceful_shutdown=timeout_graceful_shutdown,
            backlog=1024,
        )
        self.server = uvicorn.Server(config)
        self.tasks_left: list[asyncio.Task[Any]] | None = None
        self.thread = threading.Thread(target=self._main, name="uvicorn-test")

    def _main(self) -> None:
        async def main() -> None:
            await self.server.serve(sockets=[self.sock])
            me = asyncio.current_task()
            self.tasks_left = [t for t in asyncio.all_tasks() if t is not me]

        with actorflow.observe(self.watcher):
            asyncio.run(main())

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server did not stop"
        self.sock.close()

    def __exit__(self, *exc_info: Any) -> None:
        if self.thread.is_alive():
            self.stop()


def runtime_threads() -> list[str]:
    """Threads the runtime started that are still alive: its worker threads and its loop's."""
    names = [f"worker thread #{i}" for i in range(runtime.threads.statistics().threads)]
    names += [
        t.name for t in threading.enumerate() if t.name in ("actorflow-runtime", "actorflow-stop")
    ]
    return names


@pytest.fixture
def task_logs() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("actorflow.task_runs")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_200_concurrent_requests_each_run_a_flow_of_their_own(
    anyio_backend: str, task_logs: list[logging.LogRecord]
) -> None:
    n = 10
    with Server() as server:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            answers: dict[str, dict[str, Any]] = {}

            async def one(i: int) -> None:
                response = await client.get("/traced", params={"request": f"r{i}", "n": n})
                assert response.status_code == 200, response.text
                answers[f"r{i}"] = response.json()

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
    assert len(answers) == 200
    ids = set()
    for request, answer in answers.items():
        assert answer["request"] == request
        assert answer["total"] == sum(x * x for x in range(n))
        assert answer["flow_run_name"] == f"traced-{request}"  # its own name
        assert answer["seen_by_tasks"] == [answer["flow_run_id"]]  # its own run context
        ids.add(answer["flow_run_id"])
    assert len(ids) == 200
    # Its own logs: every task run's record names the flow run of its request.
    item_logs = [r for r in task_logs if r.getMessage().startswith("request ")]
    assert len(item_logs) == 200 * n
    for record in item_logs:
        request = record.getMessage().split()[1]
        assert record.flow_run_name == f"traced-{request}"  # type: ignore[attr-defined]  # run extras
        assert record.flow_run_id == answers[request]["flow_run_id"]  # type: ignore[attr-defined]  # run extras
    flows = server.watcher.finals("traced-")
    assert flows == ["Completed"] * 200
    # Its own observed runs: each flow run's task runs are the n squares and one total.
    per_flow: dict[str | None, set[str]] = {}
    for event in server.watcher.recorder.events:
        if event.run_kind == "task":
            per_flow.setdefault(event.flow_run_id, set()).add(event.run_id)
    assert set(per_flow) == ids
    assert {len(runs) for runs in per_flow.values()} == {n + 1}


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_health_answers_within_50ms_while_a_slow_sync_task_runs(anyio_backend: str) -> None:
    with Server() as server:
        running = server.watcher.when("blocking_work")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            await client.get("/health")  # a warm connection for the measurement
            slow_answer: list[httpx.Response] = []

            async def slow() -> None:
                slow_answer.append(await client.get("/slow", params={"seconds": 1.0}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                assert await anyio.to_thread.run_sync(running.wait, 10)
                latencies = []
                for _ in range(10):
                    started = time.perf_counter()
                    response = await client.get("/health")
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200
                    assert response.json()["flows_running"] == 1  # the slow flow, meanwhile
    assert slow_answer[0].status_code == 200 and slow_answer[0].json() == {"slept": 2.0}
    assert max(latencies) < 0.050, f"health latencies (s): {latencies}"
    assert server.watcher.finals("blocking_work") == ["Completed"]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_stopping_the_server_mid_flow_leaves_nothing_behind(anyio_backend: str) -> None:
    """uvicorn cancels the request after its graceful timeout; the lifespan's serving() then
    abandons the sync body the flow still waits on. The flow run ends Cancelled, its async task
    run Cancelled, its sync task run Crashed; no task is left on the server's loop, no thread
    of actorflow's once the abandoned body returns, no process."""
    with Server(timeout_graceful_shutdown=0, grace_period=0.2) as server:
        blocking = server.watcher.when("blocking_work")
        waiting = server.watcher.when("waits_for")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            outcome: list[Any] = []

            async def slow() -> None:
                try:
                    outcome.append(await client.get("/slow", params={"seconds": 1.0}))
                except httpx.HTTPError as exc:  # the server went away mid-request
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                assert await anyio.to_thread.run_sync(blocking.wait, 10)
                assert await anyio.to_thread.run_sync(waiting.wait, 10)
                await anyio.to_thread.run_sync(server.stop)
    assert not isinstance(outcome[0], httpx.Response) or outcome[0].status_code != 200
    assert server.watcher.finals("waits_for") == ["Cancelled"]
    assert server.watcher.finals("blocking_work") == ["Crashed"]
    events = server.watcher.recorder.events
    flows = [e for e in events if e.run_kind == "flow" and e.state.is_final()]
    assert [e.state.name for e in flows] == ["Cancelled"]
    assert "shutting down" in (flows[0].state.message or "")
    assert server.tasks_left == []
    with anyio.move_on_after(5):  # the abandoned body returns within its second
        while runtime_threads():  # noqa: ASYNC110  # threads ending: no event to wait on
            await anyio.sleep(0.01)
    assert runtime_threads() == []
    assert multiprocessing.active_children() == []


@pytest.fixture
def journal() -> Iterator[None]:
    """A process-wide run journal in memory for the test (the suite runs without one)."""
    import actorflow.journal

    actorflow.journal.enable(":memory:", progress=False)
    try:
        yield
    finally:
        actorflow.journal.disable()


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_a_receipt_queued_with_delay_and_run_states_read_from_the_journal(
    anyio_backend: str, journal: None
) -> None:
    """``POST /receipts`` enqueues a background run (``Task.delay``) that a task worker runs;
    ``GET /runs/{id}`` reads its state, and a flow run's, from the run journal."""
    from actorflow._queue import BackgroundTaskFuture, reset
    from actorflow.task_worker import TaskWorker

    app = load_app()
    before = set(threading.enumerate())  # other tests' queue threads are theirs
    worker = TaskWorker(app.send_receipt)
    worker_thread = threading.Thread(target=worker.run, name="task-worker-test")
    try:
        with Server() as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                queued = await client.post("/receipts", params={"order": "o-1"})
                assert queued.status_code == 202
                run_id = queued.json()["task_run_id"]
                assert (await client.post("/receipts")).status_code == 400  # no order: named
                worker_thread.start()
                future: BackgroundTaskFuture[str] = BackgroundTaskFuture(uuid.UUID(run_id))
                assert await anyio.to_thread.run_sync(future.result, 10) == "receipt for o-1"
                state = (await client.get(f"/runs/{run_id}")).json()
                assert (state["kind"], state["name"]) == ("task", "send_receipt")
                assert state["state_name"] == "Completed"

                flow_run = (await client.get("/pipeline", params={"request": "j"})).json()
                state = (await client.get(f"/runs/{flow_run['flow_run_id']}")).json()
                assert (state["name"], state["state_name"]) == ("pipeline-j", "Completed")

                missing = await client.get(f"/runs/{uuid.uuid4()}")
                assert missing.status_code == 404 and "no run with id" in missing.json()["error"]
                bad = await client.get("/runs/nope")
                assert bad.status_code == 404 and "'nope' is not a run id" in bad.json()["error"]
            worker.stop()
            worker_thread.join(30)
        # The service's shutdown wrote what .delay() was handed and stopped the queue's threads.
        left = [t.name for t in set(threading.enumerate()) - before]
        assert [name for name in left if name.startswith("actorflow-queue")] == []
        with anyio.move_on_after(5):
            while runtime_threads():  # noqa: ASYNC110  # threads ending: no event to wait on
                await anyio.sleep(0.01)
        assert runtime_threads() == []
    finally:
        worker.stop()
        if worker_thread.is_alive():
            worker_thread.join(30)
        reset()
