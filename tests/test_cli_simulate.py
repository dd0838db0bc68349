"""`pipenaut simulate`, `run --schedule-file`, emulated devices and links, the predicted column."""

import json

import pytest

SMALL = ["--dim", "16", "--batch-size", "32", "--steps", "2"]


def test_simulate_prints_bars_and_the_textbook_numbers(invoke):
    result = invoke("simulate", "1f1b", "-w", "4", "-c", "8", "--costs", "F=1,B=2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "makespan 33 ms · bubble 27.3% simulated, 27.3% theory (p-1)/(m+p-1)" in out
    assert "peak activations per worker: 4 3 2 1" in out
    assert sum(line.startswith("worker ") for line in out.splitlines()) == 4


def test_simulate_json_keys(invoke):
    data = json.loads(invoke("simulate", "gpipe", "-w", "4", "-c", "8", "--json").stdout)
    assert {"schedule", "workers", "chunks", "makespan", "bubble", "peak_activations", "idle_per_worker"} <= set(data)
    assert data["makespan"] == 33 and data["bubble"] == pytest.approx(3 / 11)
    assert data["peak_activations"] == [8, 8, 8, 8]
    assert data["idle_per_worker"] == [9, 9, 9, 9]


def test_simulate_with_latency_and_a_trace(invoke, tmp_path):
    result = invoke("simulate", "gpipe", "-w", "2", "-c", "1", "--costs", "F=1,B=2", "--latency", "0.5", "--trace", "sim.json", "--json")
    data = json.loads(result.stdout)
    assert data["makespan"] == pytest.approx(7)
    trace = json.loads((tmp_path / "sim.json").read_text())
    assert [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"] == ["gpipe (simulated)"]
    forward = next(e for e in trace["traceEvents"] if e.get("name") == "0F0 forward")
    assert forward["dur"] == 1000  # 1 ms in microseconds


def test_simulate_a_schedule_file(invoke, tmp_path):
    (tmp_path / "plan.txt").write_text("# two workers\n0F0 0F1 0B0 0B1\n1F0 1B0 1F1 1B1\n")
    data = json.loads(invoke("simulate", "--schedule-file", "plan.txt", "--json").stdout)
    assert (data["schedule"], data["workers"], data["chunks"]) == ("plan", 2, 2)
    assert data["bubble_formula"] is None
    # w1: 1F0 [1,2] 1B0 [2,4] 1F1 [4,5] 1B1 [5,7]; w0: 0B1 waits for 1B1 and ends at 7 + 2
    assert data["makespan"] == pytest.approx(9)


def test_run_a_schedule_file_trains_for_real(invoke, tmp_path):
    (tmp_path / "plan.txt").write_text("0F0, 0F1, 0B0, 0B1\n1F0, 1B0, 1F1, 1B1\n")
    result = invoke("run", "--schedule-file", "plan.txt", *SMALL, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["schedule"], data["workers"], data["chunks"]) == ("plan", 2, 2)
    assert data["bubble_formula"] is None and data["peak_activations"] == [2, 1]
    assert data["trace"] == "traces/plan.json"


def test_run_shows_the_prediction_beside_measurement_and_theory(invoke):
    data = json.loads(invoke("run", "-w", "2", "-c", "4", *SMALL, "--no-trace", "--json").stdout)
    assert 0 <= data["bubble_predicted"] < 1 and data["makespan_predicted_s"] > 0
    assert data["bubble_formula"] == pytest.approx(1 / 5)


def test_emulated_devices_agree_with_the_simulator(invoke):
    args = ["run", "-w", "2", "-c", "4", *SMALL, "--compute", "emulate", "--costs", "F=4,B=8", "--no-trace", "--json"]
    data = json.loads(invoke(*args).stdout)
    assert data["compute"] == "emulate"
    predicted = (4 + 2 - 1) * 12e-3  # (m + p - 1)(F + B)
    assert data["makespan_predicted_s"] == pytest.approx(predicted, rel=0.05)
    assert predicted * 0.98 <= data["makespan_s"] <= predicted * 1.2  # loose: shared, noisy machines
    assert data["mean_action_s"]["F"] == pytest.approx(4e-3, rel=0.3)
    assert data["final_loss"] is None  # emulated devices wait instead of computing: nothing trained


def test_emulated_latency_delays_transfers(invoke):
    args = ["run", "-w", "2", "-c", "1", *SMALL, "--compute", "emulate", "--costs", "F=2,B=4", "--latency", "5", "--no-trace", "--json"]
    data = json.loads(invoke(*args).stdout)
    predicted = 2 + 5 + 2 + 4 + 5 + 4  # F, link, F, B, link, B
    assert data["makespan_s"] * 1e3 >= predicted * 0.98
    assert data["makespan_predicted_s"] * 1e3 == pytest.approx(predicted, rel=0.1)


@pytest.mark.parametrize(
    "args,message",
    [
        (["simulate", "1f1b", "--costs", "F=1,X=2"], "--costs: cannot read cost 'X=2'"),
        (["simulate", "1f1b", "--costs", "F=-1"], "must be a number from 0 to 1e+06"),
        (["simulate", "1f1b", "--costs", "F=1e308,B=1e308"], "must be a number from 0 to 1e+06"),
        (["simulate", "1f1b", "--costs", ""], "no costs given"),
        (["simulate", "1f1b", "--costs", "F=1,F=2"], "F is given twice"),
        (["run", "--trace", "t1.gz"], "the extension picks the format; end the name in .json, .json.gz, .pftrace"),
        (["schedule", "1f1b", "--csv", ""], "--csv '' names a folder"),
        (["run", "--schedule-file", "latin1.txt"], "is not UTF-8 text"),
        (["run", "--schedule-file", "swapped.txt"], "line 1 is labelled worker 1 but is worker 0's line"),
        (["simulate", "1f1b", "-w", "4000", "-c", "4000"], "pass fewer --chunks or --workers"),
        (["simulate", "1f1b", "--costs", "F1"], "cannot read cost 'F1'"),
        (["simulate", "1f1b", "--latency", "-1"], "--latency must be a number of milliseconds from 0 to 1e+06"),
        (["simulate"], "name a schedule"),
        (["simulate", "zigzag"], "unknown schedule 'zigzag'"),
        (["simulate", "--schedule-file", "deadlock.txt"], "deadlock.txt: deadlock: worker 0 waits for 1B0"),
        (["simulate", "--schedule-file", "missing.txt"], "missing.txt: the backward of stage 1 microbatch 0 is missing"),
        (["simulate", "--schedule-file", "nope.txt"], "cannot read schedule file nope.txt"),
        (["simulate", "1f1b", "--schedule-file", "missing.txt"], "cannot be used together"),
        (["run", "--schedule-file", "deadlock.txt", "-w", "3"], "has 2 workers but --workers 3 was given"),
        (["run", "--schedule-file", "deadlock.txt"], "deadlock"),
        (["run", "--compute", "emulate"], "--compute emulate needs --costs"),
        (["run", "--costs", "F=1"], "add --compute emulate"),
        (["run", "--compute", "fast"], "Invalid value for '--compute'"),
        (["run", "--latency", "-2"], "--latency must be"),
        (["run", "--trace", "notes.txt"], "end the name in .json, .json.gz, .pftrace"),
        (["compare", "--compute", "emulate", "--costs", "Q=1"], "cannot read cost"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(invoke, tmp_path, args, message):
    (tmp_path / "deadlock.txt").write_text("0F0 0B0 0F1 0B1\n1F1 1B1 1F0 1B0\n")
    (tmp_path / "missing.txt").write_text("0F0 0B0\n1F0\n")
    (tmp_path / "latin1.txt").write_bytes("0F0 0B0 # caf\u00e9".encode("latin-1"))
    (tmp_path / "swapped.txt").write_text("worker 1: 1F0 1B0\nworker 0: 0F0 0B0\n")
    before = set(tmp_path.rglob("*"))
    result = invoke(*args, "--trace", "out.json") if args[0] == "simulate" and "--schedule-file" not in args and "--costs" not in args[2:3] else invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert result.stdout == ""
    assert set(tmp_path.rglob("*")) == before


def test_costs_are_per_worker_slice_so_chunked_schedules_do_the_same_work(invoke):
    one = json.loads(invoke("simulate", "1f1b", "--costs", "F=1,B=2", "--json").stdout)
    interleaved = json.loads(invoke("simulate", "interleaved", "-v", "2", "--costs", "F=1,B=2", "--json").stdout)
    assert one["makespan"] == 33 and interleaved["makespan"] == pytest.approx(28.5)
    assert interleaved["stage_action_scale"] == 0.5


def test_schedule_files_with_a_byte_order_mark_quotes_and_labels(invoke, tmp_path):
    (tmp_path / "bom.csv").write_bytes('\ufeff"0F0","0B0"\nworker 1: "1F0","1B0"\n'.encode("utf-8"))
    data = json.loads(invoke("simulate", "--schedule-file", "bom.csv", "--json").stdout)
    assert (data["workers"], data["chunks"]) == (2, 1)
