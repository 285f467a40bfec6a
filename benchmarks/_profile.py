"""cProfile of one run, threads included, for finding actorflow's hot spots."""

from __future__ import annotations

import cProfile
import io
import pstats
import threading
import time
from pathlib import Path
from typing import Any

from .api import run_async
from .workloads import get_case


def profile_case(workload: str, impl: str, n: int, out: Path | None = None, top: int = 25) -> str:
    """Profile one run (after a warm-up) and return the top functions by own time.

    Threads started during the run (the flow's worker pool) are profiled too and merged in, so
    that sync task bodies driven on pool threads show up. Every profile counts its own thread's
    CPU time, so time spent waiting (for a lock, for the GIL) is not charged to the code that
    happened to be running.
    """
    case = get_case(workload, impl)
    fn = case.make(n)
    warm = case.make(min(n, 10))
    thread_profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(*_: Any) -> None:
        prof = cProfile.Profile(time.thread_time)
        with lock:
            thread_profiles.append(prof)
        prof.enable()

    main = cProfile.Profile(time.thread_time)
    if case.mode == "sync":
        warm()
        threading.setprofile(start_in_thread)
        try:
            main.enable()
            fn()
            main.disable()
        finally:
            threading.setprofile(None)  # type: ignore[arg-type,unused-ignore]  # typeshed does not allow None, the runtime does
    else:

        async def run() -> None:
            await warm()
            main.enable()
            await fn()
            main.disable()

        run_async(case.mode, run)
    stats = pstats.Stats(main)
    for prof in thread_profiles:
        try:
            stats.add(prof)
        except TypeError:  # a thread that never ran a profiled call
            continue
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(str(out))
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]  # pstats.Stats has stream at runtime, not in typeshed
    stats.sort_stats("tottime").print_stats(top)
    return buf.getvalue()
