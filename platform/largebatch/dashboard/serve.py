"""``--serve``: the dashboard folder over HTTP on 127.0.0.1 (standard library ``http.server``) until Ctrl-C."""

from __future__ import annotations

import signal
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No per-request log lines on the console."""


def serve(folder: Path, port: int = 8000) -> None:
    """Serve ``folder`` on http://127.0.0.1:``port`` (0: any free port), printing the index URL; returns on Ctrl-C
    or SIGINT, also when started where SIGINT is ignored (a background job of a script inherits that, and the
    server would otherwise outlive ``kill -INT``)."""
    handler = partial(_QuietHandler, directory=str(folder))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
            print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/index.html (Ctrl-C stops)",
                  flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                print("stopped")
    finally:
        signal.signal(signal.SIGINT, previous)
