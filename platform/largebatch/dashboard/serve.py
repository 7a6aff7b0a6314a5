"""``--serve``: the dashboard folder over HTTP on 127.0.0.1 (standard library ``http.server``) until Ctrl-C."""

from __future__ import annotations

from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No per-request log lines on the console."""


def serve(folder: Path, port: int = 8000) -> None:
    """Serve ``folder`` on http://127.0.0.1:``port`` (0: any free port), printing the index URL; returns on Ctrl-C."""
    handler = partial(_QuietHandler, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/index.html (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped")
