"""A small ASGI service that runs an actorflow flow per request (Starlette, served by uvicorn).

    python examples/service/app.py            # serves on http://127.0.0.1:8000

Endpoints:

- ``GET /health``: answers at once, with the number of flow runs in progress.
- ``GET /pipeline?request=abc&n=10``: one flow run per request, named after the request: it
  fans out with ``map`` (one task run per item), passes the futures to a task that adds them up,
  and answers with the total and its flow run's id and name.
- ``GET /pipeline-plain?request=abc&n=10``: the same work with plain ``asyncio.gather``: the
  baseline the benchmark compares against.
- ``GET /traced?request=abc&n=10``: the pipeline again, each task run logging and reporting the
  flow run it sees itself in: each request's flow has its own run context, names and logs.
- ``GET /slow?seconds=1``: a flow whose sync task (blocking work) runs on a worker thread, so
  the loop, and ``/health``, go on meanwhile.
- ``GET /report?n=10``: a *sync* flow, called with ``run_sync_in_worker_thread``: the way to
  call sync flows and tasks from async code without blocking the loop.
- ``POST /receipts?order=o-1``: enqueues a background task run with ``Task.delay()`` (a task
  worker runs it: ``actorflow worker app:send_receipt``) and answers 202 with its run id.
- ``GET /runs/{run_id}``: a run's state, from the run journal (``actorflow.journal``): any flow
  run of ``/pipeline``, any background run of ``/receipts``.

The application's lifespan is ``actorflow.serving()``: on shutdown the flows still running are
cancelled (or drained: ``create_app(shutdown="drain")``) within ``grace_period`` seconds and
actorflow's loop, pools and threads stop. Serve it with uvicorn's ``timeout_graceful_shutdown``
set, or uvicorn waits for in-flight requests without end before the lifespan gets to run.

Each endpoint is one function in ``ROUTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import actorflow
import actorflow.journal
from actorflow import flow, get_run_logger, task
from actorflow.context import FlowRunContext, TaskRunContext
from actorflow.utilities.asyncutils import run_sync_in_worker_thread


# -- the work ------------------------------------------------------------------------------------
@task
async def square(x: int) -> int:
    return x * x


@task
async def total(values: list[int]) -> int:
    """Downstream of every ``square``: receives their futures, resolved."""
    return sum(values)


@flow(flow_run_name="pipeline-{request}")
async def pipeline(request: str, n: int) -> dict[str, Any]:
    squares = square.map(range(n))  # fan-out: a task run per item
    summed = total.submit(squares)  # futures passed between tasks
    context = FlowRunContext.get()
    assert context is not None
    return {
        "request": request,
        "total": await summed,
        "flow_run_id": str(context.flow_run.id),
        "flow_run_name": context.flow_run.name,
    }


@task
async def traced_square(request: str, x: int) -> dict[str, Any]:
    """An item that reports the flow run it sees itself in, and logs."""
    context = TaskRunContext.get()
    assert context is not None
    get_run_logger().debug("request %s item %d", request, x)
    return {"value": x * x, "flow_run_id": str(context.task_run.flow_run_id)}


@task
async def traced_total(items: list[dict[str, Any]]) -> int:
    return sum(item["value"] for item in items)


@flow(flow_run_name="traced-{request}")
async def traced(request: str, n: int) -> dict[str, Any]:
    """The pipeline, with each task run telling which flow run it belongs to."""
    items = traced_square.map(request, range(n))
    summed = traced_total.submit(items)
    context = FlowRunContext.get()
    assert context is not None
    return {
        "request": request,
        "total": await summed,
        "flow_run_id": str(context.flow_run.id),
        "flow_run_name": context.flow_run.name,
        "seen_by_tasks": sorted({(await item)["flow_run_id"] for item in items}),
    }


async def plain_square(x: int) -> int:
    return x * x


async def plain_total(values: list[int]) -> int:
    return sum(values)


async def plain_pipeline(request: str, n: int) -> dict[str, Any]:
    """The pipeline's work with plain asyncio: the benchmark's baseline."""
    values = await asyncio.gather(*(plain_square(x) for x in range(n)))
    return {"request": request, "total": await plain_total(values)}


@task
def blocking_work(seconds: float) -> float:
    """Sync work that takes a while (blocking I/O, say): it runs on a worker thread."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.005)
    return seconds


@task
async def waits_for(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@flow
async def slow(seconds: float) -> float:
    blocked = blocking_work.submit(seconds)
    waited = waits_for.submit(seconds)
    return float(await blocked + await waited)


@task
def cube(x: int) -> int:
    return x**3


@flow
def report(n: int) -> int:
    """A sync flow: its task runs go to its thread pool."""
    return sum(cube.map(range(n)).result())


@task
def send_receipt(order: str) -> str:
    """Background work: queued by ``/receipts``, run by a task worker."""
    return f"receipt for {order}"


def journaled(run_id: str) -> dict[str, Any]:
    """A run as the journal holds it (blocking: SQLite). Raises LookupError if there is none."""
    journal = actorflow.journal.current()
    if journal is None:
        raise LookupError("no run journal in this process (ACTORFLOW_JOURNAL=off)")
    journal.flush()  # what this process recorded so far, so that a run just ended shows
    record = journal.run(run_id)
    return {
        "id": record.id,
        "kind": record.kind,
        "name": record.name,
        "state_type": record.state_type,
        "state_name": record.state_name,
        "duration_s": record.duration_s,
    }


# -- the endpoints -------------------------------------------------------------------------------
async def health(request: Request) -> JSONResponse:
    service: actorflow.Service = request.app.state.service
    return JSONResponse({"status": "ok", "flows_running": service.statistics().flows_running})


def _params(request: Request) -> tuple[str, int]:
    return request.query_params.get("request", "anonymous"), int(request.query_params.get("n", 10))


async def run_pipeline(request: Request) -> JSONResponse:
    return JSONResponse(await pipeline(*_params(request)))


async def run_traced(request: Request) -> JSONResponse:
    return JSONResponse(await traced(*_params(request)))


async def run_pipeline_plain(request: Request) -> JSONResponse:
    return JSONResponse(await plain_pipeline(*_params(request)))


async def run_slow(request: Request) -> JSONResponse:
    seconds = float(request.query_params.get("seconds", 1))
    return JSONResponse({"slept": await slow(seconds)})


async def run_report(request: Request) -> JSONResponse:
    n = int(request.query_params.get("n", 10))
    return JSONResponse({"total": await run_sync_in_worker_thread(report, n)})


async def enqueue_receipt(request: Request) -> JSONResponse:
    order = request.query_params.get("order")
    if not order:
        return JSONResponse({"error": "the 'order' query parameter is required"}, 400)
    future = send_receipt.delay(order)  # returns at once: the queue write happens in batches
    return JSONResponse({"task_run_id": str(future.task_run_id)}, 202)


async def run_state(request: Request) -> JSONResponse:
    run_id = request.path_params["run_id"]
    try:
        return JSONResponse(await run_sync_in_worker_thread(journaled, run_id))
    except (LookupError, ValueError) as exc:  # KeyError: no such run; ValueError: not an id
        return JSONResponse({"error": str(exc.args[0] if exc.args else exc)}, 404)


Endpoint = Callable[[Request], Any]
ROUTES: list[tuple[str, Endpoint]] = [
    ("/health", health),
    ("/pipeline", run_pipeline),
    ("/pipeline-plain", run_pipeline_plain),
    ("/traced", run_traced),
    ("/slow", run_slow),
    ("/report", run_report),
    ("/receipts", enqueue_receipt),
    ("/runs/{run_id}", run_state),
]


def create_app(*, shutdown: str = "cancel", grace_period: float = 10.0) -> Starlette:
    """The service; ``shutdown`` and ``grace_period`` go to ``actorflow.serving()``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with actorflow.serving(
            shutdown=shutdown,  # type: ignore[arg-type]  # checked by serving()
            grace_period=grace_period,
        ) as service:
            app.state.service = service
            yield

    methods = {"/receipts": ["POST"]}
    routes = [Route(path, fn, methods=methods.get(path, ["GET"])) for path, fn in ROUTES]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    serve()
