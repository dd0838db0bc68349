"""Interleaved 1F1B, looped BFS, zero bubble and DualPipeV: exact orders, the simulator against the
textbook, and the torch CSV round trip."""

import json

import pytest

from pipenaut import SCHEDULES, Action, Costs, ScheduleError, build_schedule, parse_schedule, read_schedule_file, simulate
from pipenaut.actions import Overlap, parse_step
from pipenaut.schedule import write_schedule_csv


def line(schedule, worker):
    return " ".join(str(a) for a in schedule.actions[worker])


def short(schedule, worker):
    return " ".join(f"{a.kind}{a.microbatch}" for a in schedule.actions[worker])


def test_interleaved_4_workers_8_microbatches_v2_is_exact():
    s = build_schedule("interleaved", 4, 8, virtual=2)
    assert s.placement == (0, 1, 2, 3, 0, 1, 2, 3)
    assert line(s, 0) == (
        "0F0 0F1 0F2 0F3 4F0 4F1 4F2 4F3 0F4 0F5 0F6 4B0 0F7 4B1 4F4 4B2 4F5 4B3 4F6 0B0 4F7 0B1 "
        "0B2 0B3 4B4 4B5 4B6 4B7 0B4 0B5 0B6 0B7"
    )
    assert line(s, 3) == (
        "3F0 3F1 3F2 3F3 7F0 7B0 7F1 7B1 7F2 7B2 7F3 7B3 3F4 3B0 3F5 3B1 3F6 3B2 3F7 3B3 7F4 7B4 "
        "7F5 7B5 7F6 7B6 7F7 7B7 3B4 3B5 3B6 3B7"
    )


def test_zb_h1_4_workers_8_microbatches_is_exact():
    s = build_schedule("zb-h1", 4, 8)
    assert short(s, 0) == "F0 F1 F2 F3 I0 W0 F4 I1 W1 F5 I2 W2 F6 I3 W3 F7 I4 W4 I5 W5 I6 W6 I7 W7"
    assert short(s, 3) == "F0 I0 F1 I1 F2 I2 F3 I3 W0 F4 I4 W1 F5 I5 W2 F6 I6 W3 F7 I7 W4 W5 W6 W7"


def test_looped_bfs_runs_each_chunk_breadth_first():
    s = build_schedule("looped-bfs", 2, 2, virtual=2)
    assert line(s, 0) == "0F0 0F1 2F0 2F1 2B1 2B0 0B1 0B0"


def test_v_placement():
    for name in ("zb-v", "dualpipev"):
        assert build_schedule(name, 4, 8).placement == (0, 1, 2, 3, 3, 2, 1, 0)


def test_dualpipev_overlaps_a_forward_with_a_backward_in_the_steady_state():
    s = build_schedule("dualpipev", 4, 8)
    pairs = [step for row in s.actions for step in row if isinstance(step, Overlap)]
    assert pairs and all(p.first.kind == "F" and p.second.kind == "B" for p in pairs)
    assert "(0F7;7B3)OVERLAP_F_B" in line(s, 0)
    assert any(a.kind == "I" for row in s.flat for a in row)  # the zero-bubble tail


UNIT = {  # name -> (virtual, costs): chunk actions cost 1/v of a full-stage action
    "1f1b": (None, Costs(F=1, B=2)),
    "gpipe": (None, Costs(F=1, B=2)),
    "interleaved": (2, Costs(F=0.5, B=1)),
    "looped-bfs": (2, Costs(F=0.5, B=1)),
    "zb-h1": (None, Costs(F=1, I=1, W=1)),
    "zb-h2": (None, Costs(F=1, I=1, W=1)),
    "zb-v": (None, Costs(F=0.5, I=0.5, W=0.5)),
    "dualpipev": (None, Costs(F=0.5, I=0.5, W=0.5)),
}


@pytest.mark.parametrize(
    "name,makespan", [("1f1b", 33), ("interleaved", 28.5), ("zb-h1", 27), ("zb-h2", 27), ("zb-v", 25.5)]
)
def test_unit_cost_makespans_for_4_workers_8_microbatches(name, makespan):
    virtual, costs = UNIT[name]
    assert simulate(build_schedule(name, 4, 8, virtual), costs).makespan() == pytest.approx(makespan)


def test_unit_cost_peak_activations():
    assert simulate(build_schedule("zb-h1", 4, 8), UNIT["zb-h1"][1]).peak_activations() == [4, 4, 4, 4]
    assert simulate(build_schedule("1f1b", 4, 8), UNIT["1f1b"][1]).peak_activations() == [4, 3, 2, 1]


@pytest.mark.parametrize("name", list(UNIT))
@pytest.mark.parametrize("p,m", [(2, 4), (3, 6), (4, 8), (4, 12), (5, 10), (6, 16)])
def test_the_textbook_bubble_and_memory_are_what_the_simulator_finds(name, p, m):
    virtual, costs = UNIT[name]
    schedule = build_schedule(name, p, m, virtual)
    v = schedule.stages // p
    info = SCHEDULES[name]
    timeline = simulate(schedule, costs)
    assert timeline.bubble() == pytest.approx(info.bubble(p, m, v))
    assert timeline.peak_activations() == info.peak_activations(p, m, v)


def test_constraints_name_the_rule_and_the_nearest_valid_value():
    with pytest.raises(ScheduleError, match=r"dualpipev needs at least 2 x workers = 8 microbatches \(got 5\); use 8 or more"):
        build_schedule("dualpipev", 4, 5)
    with pytest.raises(ScheduleError, match="1f1b places 1 stage on each worker; virtual stages apply to interleaved, looped-bfs"):
        build_schedule("1f1b", 4, 8, virtual=2)
    with pytest.raises(ScheduleError, match="virtual stages per worker must be an integer >= 1"):
        build_schedule("interleaved", 4, 8, virtual=0)


def test_interleaved_runs_when_p_does_not_divide_m():
    # Megatron's convention asks for m % p == 0; the schedule is well defined without it.
    schedule = build_schedule("interleaved", 4, 6, virtual=2)
    assert simulate(schedule, UNIT["interleaved"][1]).makespan() > 0


def test_overlapped_steps_print_and_parse():
    pair = parse_step("(0F7;7B3)")
    assert pair == Overlap(Action(0, "F", 7), Action(7, "B", 3))
    assert str(pair) == "(0F7;7B3)OVERLAP_F_B" and parse_step(str(pair)) == pair  # torch's spelling
    one_worker = parse_schedule("0F0 1F0 (0F1; 1B0) 1F1 0B0 1B1 0B1")  # two stages on one worker
    assert one_worker.actions[0][2] == Overlap(Action(0, "F", 1), Action(1, "B", 0))
    assert one_worker.placement == (0, 0)
    assert one_worker.format() == "0F0 1F0 (0F1;1B0)OVERLAP_F_B 1F1 0B0 1B1 0B1"
    timeline = simulate(one_worker, Costs(F=1, B=2))
    (overlap,) = [s for s in timeline.spans if s.kind == "overlap"]
    assert (overlap.start, overlap.end) == (2, 5)  # encloses 0F1 [2,3] and 1B0 [3,5]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_csv_round_trip(tmp_path, name):
    workers, microbatches = 3, 7
    schedule = build_schedule(name, workers, microbatches)
    path = tmp_path / "plan.csv"
    write_schedule_csv(path, schedule)
    rows = path.read_text().splitlines()
    assert len(rows) == workers and rows[0].split(",")[0] == "0F0"
    again = read_schedule_file(path)
    assert again.actions == schedule.actions and again.placement == schedule.placement


def test_schedule_command_prints_and_writes_csv(tmp_path, invoke):
    printed = invoke("schedule", "interleaved", "-w", "4", "-c", "8", "-v", "2").stdout.splitlines()
    assert printed[0].startswith("0F0 0F1 0F2 0F3 4F0") and len(printed) == 4
    result = invoke("schedule", "dualpipev", "-w", "2", "-c", "4", "--csv", "dp.csv")
    assert result.exit_code == 0 and "wrote dp.csv" in result.stdout
    assert ")OVERLAP_F_B" in (tmp_path / "dp.csv").read_text()
    trained = invoke("run", "--schedule-file", "dp.csv", "--dim", "8", "--steps", "2", "--batch-size", "8", "--json")
    assert trained.exit_code == 0, trained.output
    data = json.loads(trained.stdout)
    assert (data["workers"], data["stages"], data["chunks"]) == (2, 4, 4)
    predicted = json.loads(invoke("simulate", "--schedule-file", "dp.csv", "--costs", "F=1,I=1,W=1", "--json").stdout)
    assert predicted["makespan"] > 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "-s", "dualpipev", "-w", "4", "-c", "6"], "needs at least 2 x workers = 8 microbatches (got 6); use 8 or more"),
        (["run", "-s", "1f1b", "-v", "2"], "virtual stages apply to interleaved, looped-bfs"),
        (["run", "-s", "interleaved", "-v", "0"], "--virtual must be at least 1"),
        (["run", "-s", "interleaved", "-w", "4", "-v", "3", "--layers", "8"], "8 layers cannot be split over 12 stages; pass --layers 12"),
        (["schedule", "zigzag"], "unknown schedule"),
        (["run", "--schedule-file", "x.csv", "-v", "2"], "--virtual applies to built-in schedules"),
    ],
)
def test_bad_schedule_settings_are_one_line(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
