"""``actorflow runs``: the flow runs in the journal, one run in detail, and pruning.

On a terminal the output is a table (drawn by ``rich`` when it is installed: ``actorflow[cli]``,
else plain text); elsewhere, or with ``--json``, it is JSON whose keys are stable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["add_arguments", "run"]


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--journal",
        metavar="PATH",
        default=default,
        help="the journal to read (default: ACTORFLOW_JOURNAL, else $ACTORFLOW_HOME/journal.db)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print JSON (the default when stdout is not a terminal)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser, top=True)
    parser.add_argument("--limit", type=int, default=20, help="how many flow runs (default 20)")
    parser.add_argument("--state", help="only flow runs in this state type or name (FAILED)")
    sub = parser.add_subparsers(dest="runs_command", metavar="{show,prune}")
    show = sub.add_parser("show", help="one run: its task runs, state histories, failures, logs")
    show.add_argument("id", help="a run id, or its start or end (as `actorflow runs` shows ids)")
    _common(show, top=False)
    prune = sub.add_parser("prune", help="delete old flow runs with their task runs and logs")
    prune.add_argument(
        "--older-than",
        metavar="AGE",
        help="delete runs created more than AGE ago: seconds, or 30s, 15m, 12h, 7d",
    )
    prune.add_argument("--keep", type=int, metavar="N", help="keep only the newest N flow runs")
    _common(prune, top=False)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """``"90"``, ``"30s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise ValueError(f"--older-than {text!r}: give seconds, or a number with s, m, h, d or w")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def journal_path(given: str | None) -> str:
    if given:
        return given
    from .._journal._registry import _path_from_setting, default_path

    setting = _path_from_setting(os.environ.get("ACTORFLOW_JOURNAL", "on"))
    if setting is None or setting == ":memory:":
        return str(default_path())
    return setting


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def run(args: argparse.Namespace) -> int:
    from ..journal import Journal

    path = journal_path(args.journal)
    try:
        journal = Journal.open(path)
    except FileNotFoundError as exc:
        print(f"actorflow runs: {exc}", file=sys.stderr)
        return 1
    as_json = args.json or not sys.stdout.isatty()
    try:
        command = args.runs_command
        if command == "show":
            return _show(journal, args.id, as_json)
        if command == "prune":
            return _prune(journal, args, as_json)
        return _list(journal, args, as_json)
    finally:
        journal.close()


# -- listing --------------------------------------------------------------------------------------
def _list(journal: Any, args: argparse.Namespace, as_json: bool) -> int:
    if args.limit < 1:
        print(f"actorflow runs: --limit must be at least 1, got {args.limit}", file=sys.stderr)
        return 2
    summaries = journal.flow_runs(limit=args.limit, state=args.state)
    if as_json:
        _print_json({"journal": journal.path, "flow_runs": [s.to_dict() for s in summaries]})
        return 0
    rows = [
        [
            s.run.id,
            s.run.spec_name,
            s.run.name,
            state_label(s.run),
            _when(s.run.created_ns),
            _duration(s.run),
            ", ".join(f"{n} {state}" for state, n in sorted(s.task_runs.items())) or "-",
        ]
        for s in reversed(summaries)  # newest first on a terminal
    ]
    headers = ["id", "flow", "run", "state", "started", "duration", "task runs"]
    table(f"Flow runs in {journal.path}", headers, rows)
    return 0


def state_label(record: Any) -> str:
    if record.finished:
        return str(record.state_name)
    if not record.process_alive:
        return f"{record.state_name} (unfinished: its process ended)"
    return str(record.state_name)


def _when(ns: int) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ns / 1e9))


def _duration(record: Any) -> str:
    seconds = record.duration_s
    if seconds is None:
        if record.start_ns is None or not record.process_alive:
            return "-"
        seconds = (time.time_ns() - record.start_ns) / 1e9
        return f"{seconds:.1f}s so far"
    return f"{seconds:.3f}s" if seconds < 10 else f"{seconds:.1f}s"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on the terminal: rich's when it is installed, else aligned plain text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(plain_table(title, headers, rows))
        return
    rich_table = Table(title=title)
    for header in headers:
        rich_table.add_column(header)
    for row in rows:
        rich_table.add_row(*row)
    Console().print(rich_table)


def plain_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


# -- one run --------------------------------------------------------------------------------------
def _show(journal: Any, run_id: str, as_json: bool) -> int:
    try:
        record = journal.find(run_id)
    except (KeyError, ValueError) as exc:
        print(f"actorflow runs show: {exc.args[0]}", file=sys.stderr)
        return 1
    children: list[Any] = []
    flows = [record.id] if record.kind == "flow" else []
    while flows:  # the flow run's runs, and those of its subflow runs, and theirs
        found = journal.runs(flow_run_id=flows.pop(), history=True)
        children += found
        flows += [r.id for r in found if r.kind == "flow"]
    logs = journal.logs([c.id for c in children]) if children else []
    if as_json:
        _print_json(
            {
                "run": record.to_dict(),
                "task_runs": [c.to_dict() for c in children],
                "logs": [line.to_dict() for line in logs],
            }
        )
        return 0
    print(render_tree(record, children, logs))
    return 0


def render_tree(record: Any, children: Sequence[Any], logs: Sequence[Any]) -> str:
    """A run and the runs under it, each with its state history; failures with tracebacks; logs."""
    out: list[str] = []
    by_parent: dict[str | None, list[Any]] = {}
    for child in children:
        by_parent.setdefault(child.parent_id, []).append(child)
    logs_of: dict[str, list[Any]] = {}
    for line in (*record.logs, *logs):
        logs_of.setdefault(line.run_id, []).append(line)

    def history(run: Any) -> str:
        start = run.transitions[0].timestamp_ns if run.transitions else run.created_ns
        return " -> ".join(
            f"{t.state_name}@{(t.timestamp_ns - start) / 1e9:+.3f}s" for t in run.transitions
        )

    def one(run: Any, depth: int) -> None:
        pad = "  " * depth
        out.append(
            f"{pad}{run.kind} run {run.name!r} [{state_label(run)}] {run.id}  "
            f"({_duration(run)}, attempts: {run.run_count})"
        )
        out.append(f"{pad}  states: {history(run)}")
        if run.parameters:
            params = ", ".join(f"{k}={v}" for k, v in run.parameters.items())
            out.append(f"{pad}  parameters: {params}")
        for t in run.transitions:
            if t.message and t.state_type not in ("RUNNING", "PENDING"):
                out.append(f"{pad}  {t.state_name}: {t.message}")
            if t.traceback:
                out.extend(f"{pad}  | {line}" for line in t.traceback.rstrip().splitlines())
        for line in logs_of.get(run.id, ()):
            text = line.message.rstrip().replace("\n", f"\n{pad}    ")
            out.append(f"{pad}  log {line.level}: {text}")
        for child in by_parent.get(run.id, ()):
            one(child, depth + 1)

    one(record, 0)
    return "\n".join(out)


# -- pruning --------------------------------------------------------------------------------------
def _prune(journal: Any, args: argparse.Namespace, as_json: bool) -> int:
    if args.older_than is None and args.keep is None:
        print("actorflow runs prune: give --older-than AGE, --keep N, or both", file=sys.stderr)
        return 2
    try:
        older_than = None if args.older_than is None else parse_age(args.older_than)
        deleted = journal.prune(older_than=older_than, keep=args.keep)
    except ValueError as exc:
        print(f"actorflow runs prune: {exc}", file=sys.stderr)
        return 2
    if as_json:
        _print_json({"journal": journal.path, "deleted_runs": deleted})
    else:
        print(f"deleted {deleted} runs from {journal.path}")
    return 0
