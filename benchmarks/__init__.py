"""actorflow's benchmark harness: per-task overhead against bare asyncio, anyio, trio, threads,
Dask and Prefect.

Run it with ``python -m benchmarks`` (``--help`` for options); call it from code with
:func:`time_flow` (any flow) or :func:`run_workload` (one of ours).
"""

import os

# The harness's actorflow cases choose the run journal themselves (off, or on in a scratch file:
# see workloads.set_journal); nothing it runs goes to ~/.actorflow.
os.environ.setdefault("ACTORFLOW_JOURNAL", "off")

from benchmarks.api import Measurement, TimingResult, run_workload, time_flow
from benchmarks.workloads import WORKLOADS

__all__ = ("WORKLOADS", "Measurement", "TimingResult", "run_workload", "time_flow")
