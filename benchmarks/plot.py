"""The README plot: per-task cost against N, log-log, one panel per workload."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .api import Measurement
from .workloads import WORKLOADS

#: One colour per implementation, the same in every panel.
COLOURS = {
    "actorflow": "#1f77b4",
    "actorflow/asyncio": "#ff7f0e",
    "actorflow/trio": "#2ca02c",
    "asyncio": "#d62728",
    "anyio/asyncio": "#9467bd",
    "anyio/trio": "#8c564b",
    "trio": "#e377c2",
    "threadpool": "#7f7f7f",
    "dask": "#bcbd22",
    "plain": "#17becf",
    "plain/asyncio": "#393b79",
    "prefect": "#843c39",
    "prefect/asyncio": "#e7969c",
}


def plot(ms: Sequence[Measurement], path: Path) -> Path | None:
    """Write the PNG to ``path``; ``None`` when no workload has a timing to draw."""
    # A bare Figure, not pyplot: no global backend or figure state is touched.
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = []
    for name in WORKLOADS:
        mine = [m for m in ms if m.workload == name and m.ok and m.timing is not None]
        if mine and WORKLOADS[name].fixed_n is None:
            panels.append((name, mine))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, mine) in zip(axes.flat, panels, strict=False):
        impls = list(dict.fromkeys(m.impl for m in mine))
        for impl in impls:
            points = sorted((m.n, m.timing.per_item_us) for m in mine if m.impl == impl)  # type: ignore[union-attr]  # measurements here always carry timing
            xs, ys = zip(*points, strict=True)
            ours = impl.startswith("actorflow")
            ax.plot(
                xs,
                ys,
                marker="o" if ours else ".",
                linestyle="-" if ours else "--",
                linewidth=2.0 if ours else 1.0,
                label=impl,
                color=COLOURS.get(impl),
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{name}: {WORKLOADS[name].description}", fontsize=9)
        ax.set_xlabel("N")
        ax.set_ylabel("µs per task (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
