"""The run viewer: a local web page over the journal (``actorflow ui``).

The standard library's HTTP server serves one static page (``ui.html``) and a small JSON API
that reads the journal; the page draws the list of flow runs and, for one, a timeline of its
task runs, and polls while a run is unfinished. Nothing beyond the standard library is needed.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, final
from urllib.parse import parse_qs, urlsplit

import orjson

from ._store import Journal

__all__ = ["RunViewer"]


def _page() -> bytes:
    return resources.files(__package__).joinpath("ui.html").read_bytes()


@final
class RunViewer:
    """Serves the viewer for ``journal`` on ``host:port`` (port 0: any free port).

    ``serve_forever()`` blocks; ``start()`` serves from a thread of its own until ``close()``.
    """

    def __init__(self, journal: Journal, host: str = "127.0.0.1", port: int = 8787) -> None:
        self.journal = journal
        viewer = self

        class Handler(_Handler):
            owner = viewer

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        address = self._server.server_address
        host, port = str(address[0]), address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> RunViewer:
        thread = threading.Thread(target=self.serve_forever, name="actorflow-ui", daemon=True)
        self._thread = thread
        thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    # -- the API ----------------------------------------------------------------------------------
    def flow_runs(self, limit: int) -> Any:
        return {"flow_runs": [s.to_dict() for s in reversed(self.journal.flow_runs(limit=limit))]}

    def flow_run(self, run_id: str) -> Any:
        run = self.journal.run(run_id)
        children = self.journal.runs(flow_run_id=run.id, history=True)
        return {"run": run.to_dict(), "task_runs": [c.to_dict() for c in children]}

    def run(self, run_id: str) -> Any:
        return {"run": self.journal.run(run_id).to_dict()}


class _Handler(BaseHTTPRequestHandler):
    owner: RunViewer
    server_version = "actorflow-ui"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are not worth a line each on the console

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if not parts:
                self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
            elif parts == ["api", "flow-runs"]:
                limit = int(parse_qs(url.query).get("limit", ["50"])[0])
                self._json(self.owner.flow_runs(max(1, min(limit, 1000))))
            elif len(parts) == 3 and parts[:2] == ["api", "flow-runs"]:
                self._json(self.owner.flow_run(parts[2]))
            elif len(parts) == 3 and parts[:2] == ["api", "runs"]:
                self._json(self.owner.run(parts[2]))
            else:
                self._json({"error": f"nothing at {url.path}"}, HTTPStatus.NOT_FOUND)
        except (KeyError, ValueError) as exc:
            self._json({"error": str(exc.args[0] if exc.args else exc)}, HTTPStatus.NOT_FOUND)

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, orjson.dumps(value), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)
