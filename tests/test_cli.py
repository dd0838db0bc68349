"""The command line through typer's test runner, output rendered at a fixed width."""

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipenaut import SCHEDULES
from pipenaut.cli import app

from conftest import ENV

SMALL = ["--dim", "16", "--batch-size", "32", "--steps", "3"]


def test_run_prints_bars_stats_and_where_the_trace_went(invoke, tmp_path):
    result = invoke("run", *SMALL)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1f1b · 4 workers · 8 microbatches" in out
    bars = [line for line in out.splitlines() if line.startswith("worker ")]
    assert len(bars) == 4 and all(len(line) <= 100 for line in bars)
    assert all(set(line[len("worker 0 "):]) <= set("FB0123456789o·") for line in bars)
    assert re.search(r"bubble \d+\.\d% measured, \d+\.\d% predicted, 27\.3% theory \(p-1\)/\(m\+p-1\)", out)
    assert "peak activations per worker: 4 3 2 1" in out
    assert "trace: traces/1f1b.json" in out and "ui.perfetto.dev" in out
    assert json.loads((tmp_path / "traces" / "1f1b.json").read_text())["traceEvents"]


def test_run_json_is_one_object_and_nothing_else(invoke, tmp_path):
    result = invoke("run", "-s", "gpipe", "-w", "2", "-c", "4", *SMALL, "--trace", "out/g.json", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"schedule", "workers", "chunks", "steps", "step_time_s", "bubble_measured", "bubble_formula",
            "peak_activations", "losses", "final_loss", "trace"} <= set(data)
    assert (data["schedule"], data["workers"], data["chunks"], data["steps"]) == ("gpipe", 2, 4, 3)
    assert data["peak_activations"] == [4, 4]
    assert data["bubble_formula"] == pytest.approx(1 / 5)
    assert 0 <= data["bubble_measured"] < 1 and data["step_time_s"] > 0
    assert len(data["losses"]) == 3 and data["final_loss"] == data["losses"][-1]
    assert data["trace"] == "out/g.json" and (tmp_path / "out" / "g.json").exists()


def test_no_trace_writes_nothing(invoke, tmp_path):
    result = invoke("run", *SMALL, "--no-trace", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["trace"] is None
    assert not (tmp_path / "traces").exists()


def test_uneven_layers_are_spread_and_said(invoke):
    result = invoke("run", *SMALL, "--layers", "10", "--no-trace")
    assert result.exit_code == 0
    assert "layers per stage [3, 3, 2, 2]" in result.stdout


def test_compare_runs_every_schedule_into_one_table_and_one_trace(invoke, tmp_path):
    result = invoke("compare", "-w", "2", "-c", "2", *SMALL)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in ("naive", "gpipe", "1f1b"):
        assert name in out
    assert "×naive" in out and "1.00" in out
    trace = json.loads((tmp_path / "traces" / "compare.json").read_text())
    processes = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert processes == [f"{name} (measured)" for name in SCHEDULES if name != "dualpipev"]
    assert "dualpipev skipped: dualpipev needs at least 2 x workers = 4 microbatches (got 2)" in out


def test_compare_json(invoke):
    result = invoke("compare", "-w", "2", "-c", "4", *SMALL, "--no-trace", "--json")
    data = json.loads(result.stdout)
    assert [r["schedule"] for r in data["runs"]] == list(SCHEDULES)
    assert data["trace"] is None
    # same seed, same data: every schedule trains the same model to the same loss
    assert len({round(r["final_loss"], 4) for r in data["runs"]}) == 1


def test_explain_draws_from_a_unit_cost_simulation(invoke):
    result = invoke("explain", "1f1b")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "theory (p-1)/(m+p-1) = 27.3%, simulated 27.3% (makespan 33 ms)" in out
    assert "(at most p): 4 3 2 1" in out and "simulated peak per worker: 4 3 2 1" in out
    assert "worker 3 ······F0B0BBF1B1BBF2B2BB" in out  # drawn from the simulation, 2 cells per ms
    assert "Megatron" in out
    assert "worker 0: 0F0 0F1 0F2 0F3 0B0" in out
    assert sum(line.startswith("worker ") and "F" in line for line in out.splitlines()) >= 4


def test_explain_naive(invoke):
    out = invoke("explain", "naive", "-w", "2", "-c", "2").stdout
    assert "(p-1)/p = 50.0%, simulated 50.0%" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "-w", "0"], "--workers must be at least 1 (got 0)"),
        (["run", "-c", "0"], "--chunks must be at least 1"),
        (["run", "--steps", "0"], "--steps must be at least 1"),
        (["run", "--dim", "-3"], "--dim must be at least 1"),
        (["run", "--layers", "0"], "--layers must be at least 1"),
        (["run", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["run", "-w", "4", "--layers", "3"], "3 layers cannot be split over 4 stages; pass --layers 4 or more"),
        (["run", "--batch-size", "4", "-c", "8"], "a batch of 4 cannot be cut into 8 microbatches"),
        (["run", "-s", "zigzag"], "unknown schedule 'zigzag'; choose one of: naive, gpipe, 1f1b, interleaved, looped-bfs, zb-h1, zb-h2, zb-v, dualpipev"),
        (["run", "--trace", "traces"], "cannot write the trace to traces"),
        (["run", "-w", "abc"], "Invalid value for '--workers'"),
        (["compare", "-c", "0"], "--chunks must be at least 1"),
        (["explain", "zigzag"], "unknown schedule 'zigzag'"),
        (["run", "--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_trace(invoke, tmp_path, args, message):
    (tmp_path / "traces").mkdir()
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert list((tmp_path / "traces").iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc, where nobody, not even root, may create files")
def test_unwritable_trace_location_is_refused_before_training(invoke):
    result = invoke("run", *SMALL, "--trace", "/proc/pipenaut/x.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write the trace to /proc/pipenaut/x.json")
    assert "--no-trace" in result.stderr


def test_trace_under_a_file_is_refused(invoke, tmp_path):
    (tmp_path / "afile").write_text("")
    result = invoke("run", *SMALL, "--trace", "afile/x.json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write the trace to afile/x.json")


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "pipenaut", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "run" in result.stdout and "compare" in result.stdout and "explain" in result.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "--seed", "-1"], "--seed must be 0 or more"),
        (["run", "--dim", "1000000"], "GiB, more than this machine's"),
        (["run", "--batch-size", "100000000000", "--dim", "8"], "pass a smaller --dim, --batch-size or --layers"),
        (["run", "--trace", "/dev/null"], "not a regular file"),
        (["run", "--trace", "newdir/"], "names a folder, not a file"),
        (["run", "--trace", "a.json", "--no-trace"], "--trace and --no-trace contradict"),
    ],
)
def test_more_bad_input(invoke, tmp_path, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_trace_through_a_symlink_writes_the_target_and_keeps_the_link(invoke, tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    assert invoke("run", *SMALL, "--trace", "link.json").exit_code == 0
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["traceEvents"]


def test_a_failed_probe_leaves_no_folders_behind(invoke, tmp_path):
    result = invoke("run", *SMALL, "--layers", "1", "--trace", "deep/er/t.json")
    assert result.exit_code == 2
    assert not (tmp_path / "deep").exists()


def test_bare_command_prints_help_and_no_empty_error(invoke):
    result = invoke()
    assert "Usage" in result.stdout and "error" not in result.output


def test_version(invoke):
    assert invoke("--version").stdout.strip() == "pipenaut 0.1.0"


def test_help_shows_the_computed_defaults():
    out = CliRunner().invoke(app, ["run", "--help"], env={**ENV, "COLUMNS": "200"}).stdout
    assert "[default: 8, or one per" in out and "[default: traces/<schedule>.json]" in out


def test_compare_a_chosen_few(invoke):
    data = json.loads(invoke("compare", "-w", "2", "-c", "2", *SMALL, "--schedules", "1F1B, zb-h1,dualpipev", "--no-trace", "--json").stdout)
    assert [r["schedule"] for r in data["runs"]] == ["1f1b", "zb-h1"]
    assert data["skipped"] == ["dualpipev skipped: dualpipev needs at least 2 x workers = 4 microbatches (got 2); use 4 or more"]
    bad = invoke("compare", "--schedules", "1f1b,zigzag")
    assert bad.exit_code == 2 and "unknown schedule 'zigzag' in --schedules" in bad.stderr


def test_bars_show_every_action_even_when_actions_are_narrower_than_a_cell():
    result = CliRunner().invoke(app, ["explain", "naive"], env={**ENV, "COLUMNS": "80"})
    rows = [line for line in result.stdout.splitlines() if line.startswith("worker ") and ":" not in line]
    assert len(rows) == 4
    assert all(row.count("F") == 8 for row in rows), rows  # 8 forwards of 1 ms in 96 ms on ~70 cells


def test_compare_with_nothing_left_to_run_says_why(invoke):
    result = invoke("compare", "-w", "4", "-c", "2", "--schedules", "dualpipev")
    assert result.exit_code == 2
    assert result.stderr == "error: dualpipev needs at least 2 x workers = 8 microbatches (got 2); use 8 or more\n"
