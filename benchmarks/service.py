"""``python -m benchmarks.service``: the overhead actorflow adds to an async service.

The example service (``examples/service/app.py``) runs under uvicorn in a process of its own, on a
loopback port; an httpx client here sends requests from ``--concurrency`` workers at once, to two
endpoints doing the same work: ``/pipeline`` runs a flow per request (``map`` over ``--items``
items, futures passed to a task that adds them up), ``/pipeline-plain`` does it with plain
``asyncio.gather``. Rounds alternate between the two, so that drift on a shared machine falls on
both. Reported per endpoint: requests per second, and p50 / p99 latency of one request as the
client sees it. Target: the flow endpoint's p50 at most 1.5x the plain one's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENDPOINTS = {"actorflow flow per request": "/pipeline", "plain asyncio.gather": "/pipeline-plain"}
TARGET = 1.5

# Run in the server's process: the example app under uvicorn, on a port it picks and prints.
_SERVER = """
import logging, os, socket, sys
sys.path.insert(0, os.path.join(sys.argv[1], "examples", "service"))
import uvicorn
import app
logging.getLogger("actorflow").setLevel(logging.WARNING)
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
sock.bind(("127.0.0.1", 0))
sock.listen(2048)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(
    app.create_app(), lifespan="on", log_level="warning", timeout_graceful_shutdown=5,
    backlog=2048,
)
uvicorn.Server(config).run(sockets=[sock])
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.service", description=__doc__)
    p.add_argument("--requests", type=int, default=2000, help="requests per endpoint per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds, alternating the endpoints")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    p.add_argument("--items", type=int, default=10, help="items each request fans out over")
    p.add_argument(
        "--journal",
        choices=("on", "off"),
        default="on",
        help="the server's run journal (ACTORFLOW_JOURNAL; on by default, as in a service)",
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "service")
    return p


async def _round(url: str, path: str, args: argparse.Namespace) -> tuple[list[float], float]:
    """Latencies (s) of ``args.requests`` requests to ``path``, and the wall time of all."""
    import httpx

    latencies: list[float] = []
    left = args.requests
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker(w: int) -> None:
            nonlocal left
            i = 0
            while left > 0:
                left -= 1
                i += 1
                params = {"request": f"w{w}-{i}", "n": args.items}
                started = time.perf_counter()
                response = await client.get(path, params=params)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")

        for w in range(args.concurrency):  # warm connections, and the server's first calls
            await client.get(path, params={"request": f"warm{w}", "n": args.items})
        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-service-") as home:
        env = {
            **os.environ,
            "ACTORFLOW_LOGGING_LEVEL": "WARNING",
            "ACTORFLOW_HOME": home,  # its journal and queue files, not the user's
            "ACTORFLOW_JOURNAL": args.journal,
            "ACTORFLOW_PROGRESS": "off",
        }
        return _measure(args, env)


def _measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(ROOT)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        results: dict[str, dict[str, list[float]]] = {
            name: {"latencies": [], "walls": []} for name in ENDPOINTS
        }
        for _ in range(args.rounds):
            for name, path in ENDPOINTS.items():
                latencies, wall = asyncio.run(_round(url, path, args))
                results[name]["latencies"] += latencies
                results[name]["walls"].append(wall)
    finally:
        server.terminate()
        server.wait(30)
        if server.stdout is not None:
            server.stdout.close()
    summary: dict[str, Any] = {}
    for name, got in results.items():
        latencies = got["latencies"]
        summary[name] = {
            "path": ENDPOINTS[name],
            "requests": len(latencies),
            "requests_per_s": len(latencies) / sum(got["walls"]),
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": _percentile(latencies, 0.99) * 1000,
        }
    flow, plain = (summary[name] for name in ENDPOINTS)
    ratio = flow["p50_ms"] / plain["p50_ms"]
    return {
        "meta": {
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
            "load_average": os.getloadavg(),
            "requests_per_round": args.requests,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "items": args.items,
            "journal": args.journal,
        },
        "endpoints": summary,
        "p50_ratio": ratio,
        "target": f"flow endpoint p50 <= {TARGET}x plain endpoint p50",
        "verdict": "met" if ratio <= TARGET else "missed",
    }


def table(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"Service overhead ({meta['when']}; {meta['machine']}; {meta['rounds']} rounds of "
        f"{meta['requests_per_round']} requests per endpoint, {meta['concurrency']} in flight, "
        f"{meta['items']} items per request, run journal {meta['journal']}):",
        "",
        "| endpoint | requests/s | p50 | p99 |",
        "|---|---|---|---|",
    ]
    for name, got in result["endpoints"].items():
        lines.append(
            f"| {name} (`{got['path']}`) | {got['requests_per_s']:,.0f} | "
            f"{got['p50_ms']:.2f} ms | {got['p99_ms']:.2f} ms |"
        )
    lines += [
        "",
        f"p50 ratio {result['p50_ratio']:.2f}x (target: at most {TARGET}x): {result['verdict']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
