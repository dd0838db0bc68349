"""Open a trace in ui.perfetto.dev the way Perfetto's own tooling does.

The UI (a page on https://ui.perfetto.dev) may fetch traces from ``http://127.0.0.1:9001`` only,
and only with a CORS header naming it. So: serve just that one file on loopback port 9001, point
the browser at ``https://ui.perfetto.dev/#!/?url=http://127.0.0.1:9001/<name>``, and stop once the
UI has fetched it.
"""

from __future__ import annotations

import errno
import http.server
import threading
import urllib.parse
from pathlib import Path

PORT = 9001
UI = "https://ui.perfetto.dev"


class PortBusy(OSError):
    pass


def ui_link(name: str, port: int = PORT) -> str:
    return f"{UI}/#!/?url=http://127.0.0.1:{port}/{urllib.parse.quote(name)}"


class TraceServer(http.server.HTTPServer):
    """Serves one file at ``/<its name>`` to the Perfetto UI; everything else is 404."""

    def __init__(self, path: Path, port: int = PORT):
        self.trace = Path(path)
        self.fetched = threading.Event()
        try:
            super().__init__(("127.0.0.1", port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusy(f"port {port} on 127.0.0.1 is busy") from None
            raise

    @property
    def link(self) -> str:
        return ui_link(self.trace.name, self.server_address[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    server: TraceServer

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", UI)
        self.send_header("Cache-Control", "no-cache")

    def do_OPTIONS(self) -> None:  # the UI may ask before it fetches
        self.send_response(200)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "GET, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.end_headers()

    def do_GET(self) -> None:
        if urllib.parse.unquote(self.path.split("?", 1)[0]) != "/" + self.server.trace.name:
            self.send_response(404)
            self._cors()
            self.end_headers()
            return
        data = self.server.trace.read_bytes()
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.server.fetched.set()

    def log_message(self, format: str, *args) -> None:  # quiet: the CLI says what matters
        pass


def serve_until_fetched(server: TraceServer, timeout: float | None = None) -> bool:
    """Serve until the trace was fetched once (True), or ``timeout`` seconds pass (False)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        while not server.fetched.wait(0.2 if timeout is None else min(0.2, timeout)):
            if timeout is not None:
                timeout -= 0.2
                if timeout <= 0:
                    return False
        return True
    finally:
        server.shutdown()
        server.server_close()
