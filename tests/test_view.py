"""`pipenaut view`: one file, on loopback, for the Perfetto UI, until it was fetched."""

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from pipenaut.cli import app
from pipenaut.view import UI, PORT, PortBusy, TraceServer, serve_until_fetched, ui_link


def fetch(url, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError as exc:
            return exc
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def test_link_is_the_one_the_ui_understands():
    assert ui_link("my run.json") == "https://ui.perfetto.dev/#!/?url=http://127.0.0.1:9001/my%20run.json"


def test_serves_only_that_file_with_cors_then_stops(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text('{"traceEvents": []}')
    (tmp_path / "secret.txt").write_text("no")
    server = TraceServer(trace)
    assert server.server_address[0] == "127.0.0.1"
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("fetched", serve_until_fetched(server, timeout=10)))
    worker.start()
    other = fetch(f"http://127.0.0.1:{PORT}/secret.txt")
    assert other.code == 404
    response = fetch(f"http://127.0.0.1:{PORT}/t.json")
    assert response.status == 200 and response.read() == trace.read_bytes()
    assert response.headers["Access-Control-Allow-Origin"] == UI
    worker.join(5)
    assert results["fetched"] is True
    with pytest.raises(OSError):  # stopped serving
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/t.json", timeout=1)


def test_view_command_without_browser(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text("{}")
    threading.Thread(target=lambda: fetch(f"http://127.0.0.1:{PORT}/t.json"), daemon=True).start()
    result = CliRunner().invoke(app, ["view", str(trace), "--no-browser"])
    assert result.exit_code == 0, result.output
    assert ui_link("t.json") in result.stdout and "stopped serving" in result.stdout


def test_busy_port_is_one_clear_line(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text("{}")
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT of earlier tests
    blocker.bind(("127.0.0.1", PORT))
    blocker.listen()
    try:
        with pytest.raises(PortBusy):
            TraceServer(trace)
        result = CliRunner().invoke(app, ["view", str(trace), "--no-browser"])
    finally:
        blocker.close()
    assert result.exit_code == 1
    assert result.stderr.startswith("error: port 9001 on 127.0.0.1 is busy") and len(result.stderr.splitlines()) == 1


def test_missing_trace(tmp_path):
    result = CliRunner().invoke(app, ["view", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no trace file at" in result.stderr
