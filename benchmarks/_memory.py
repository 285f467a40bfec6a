"""Peak resident memory of one run, measured in a fresh process.

For sizes where tracemalloc's bookkeeping would itself dominate (a million runs), the child
builds the inputs, warms up, resets the kernel's high-water mark of its resident set, runs once
and reads the mark again: the growth is what the run needed above the inputs.

The mark is ``VmHWM`` from ``/proc/self/status``, reset by writing ``5`` to
``/proc/self/clear_refs`` (Linux). ``getrusage``'s ``ru_maxrss`` is no use here: it survives
``exec`` and so starts at the size of the harness that spawned the child.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from typing import Any

from .workloads import get_case


def rss_peak_bytes(workload: str, impl: str, n: int, timeout: float = 900) -> int:
    """Peak RSS growth (bytes) of one run of ``impl`` of ``workload`` at size ``n``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._memory", workload, impl, str(n)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr.strip()[-500:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return int(data["after"]) - int(data["before"])


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the high-water mark to the current resident set; returns that size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _child(workload: str, impl: str, n: int) -> dict[str, Any]:
    case = get_case(workload, impl)
    fn = case.make(n)
    warm = case.make(10)
    if case.mode == "sync":
        warm()
        gc.collect()
        before = _reset_peak()
        fn()
        return {"before": before, "after": _status("VmHWM")}

    from .api import run_async

    async def main() -> dict[str, Any]:
        await warm()
        gc.collect()
        before = _reset_peak()
        await fn()
        return {"before": before, "after": _status("VmHWM")}

    return run_async(case.mode, main)  # type: ignore[no-any-return]  # run_async returns the coroutine's untyped result


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
