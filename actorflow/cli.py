"""The ``actorflow`` command line.

Each subcommand lives in its own private module under ``actorflow/_cli/`` and is imported only
when it is used, so ``actorflow --help`` stays cheap. A subcommand module exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ("main",)

# name -> (module, one-line help). Modules are imported lazily.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("actorflow._cli.runs", "list the journaled flow runs, show one, prune old ones"),
    "ui": ("actorflow._cli.ui", "serve the run viewer: flow runs and their timelines, locally"),
    "worker": ("actorflow._cli.worker", "serve background runs of tasks (module:task ...)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorflow", description="actorflow command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with *argv* (``sys.argv[1:]`` when ``None``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    result: int = importlib.import_module(args._module).run(args)
    return result
