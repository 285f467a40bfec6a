"""``actorflow worker module:task ...``: serve background runs of the named tasks."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

__all__ = ("add_arguments", "run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "tasks",
        nargs="+",
        metavar="MODULE:TASK",
        help="tasks to serve, each as module:name (a module path or a file.py)",
    )
    parser.add_argument(
        "--limit", type=int, default=10, help="runs in flight at most (default: 10)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for sync task bodies (default: the limit, at most 40)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds a stopping worker lets running runs finish (default: 10)",
    )


def load_task(reference: str) -> Any:
    """The task named by ``module:name`` (or ``path/to/file.py:name``)."""
    from actorflow import Task

    module_name, sep, attr = reference.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{reference!r} is not module:task (for example jobs:add)")
    if module_name.endswith(".py"):
        folder, filename = os.path.split(os.path.abspath(module_name))
        sys.path.insert(0, folder)
        module_name = filename[:-3]
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(f"module {module_name!r} has no {attr!r} (in {reference!r})")
    if not isinstance(obj, Task):
        raise ValueError(f"{reference!r} is a {type(obj).__name__}, not a task made with @task")
    return obj


def run(args: argparse.Namespace) -> int:
    from actorflow._queue import TaskWorker

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(name)s | %(message)s")
    try:
        tasks = [load_task(reference) for reference in args.tasks]
        options: dict[str, Any] = {} if args.grace is None else {"grace": args.grace}
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be at least 1, got {args.threads}")
            options["threads"] = args.threads
        worker = TaskWorker(*tasks, limit=args.limit, **options)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"actorflow worker: {exc}", file=sys.stderr)
        return 2
    worker.run(args.timeout)
    return 0
