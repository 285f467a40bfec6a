"""actorflow's benchmark harness: per-task overhead against bare asyncio, anyio, trio, threads,
Dask and Prefect.

Run it with ``python -m benchmarks`` (``--help`` for options); call it from code with
:func:`time_flow` (any flow) or :func:`run_workload` (one of ours).
"""

from benchmarks.api import Measurement, TimingResult, run_workload, time_flow
from benchmarks.workloads import WORKLOADS

__all__ = ("WORKLOADS", "Measurement", "TimingResult", "run_workload", "time_flow")
