"""``actorflow ui``: serve the run viewer, a local web page over the journal."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: loopback only)"
    )
    parser.add_argument("--port", type=int, default=8787, help="the port (default 8787; 0: any)")
    parser.add_argument(
        "--journal",
        metavar="PATH",
        help="the journal to show (default: ACTORFLOW_JOURNAL, else $ACTORFLOW_HOME/journal.db)",
    )
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")


def run(args: argparse.Namespace) -> int:
    from .._journal._ui import RunViewer
    from ..journal import Journal
    from .runs import journal_path

    try:
        journal = Journal.open(journal_path(args.journal))
    except FileNotFoundError as exc:
        print(f"actorflow ui: {exc}", file=sys.stderr)
        return 1
    try:
        viewer = RunViewer(journal, args.host, args.port)
    except OSError as exc:
        print(f"actorflow ui: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        journal.close()
        return 1
    print(f"actorflow run viewer on {viewer.url} (journal: {journal.path}); Ctrl-C stops it")
    sys.stdout.flush()
    if args.open:
        import webbrowser

        webbrowser.open(viewer.url)
    try:
        viewer.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        viewer.close()
        journal.close()
    return 0
