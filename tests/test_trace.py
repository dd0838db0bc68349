"""The Chrome JSON trace: structure the Perfetto UI needs, checked on the file itself."""

import itertools
import json
import math
import re
from collections import Counter

import pytest

from pipenaut import Costs, ModelConfig, build_schedule, simulate, train, write_trace
from pipenaut.trace import slice_name
from pipenaut.timeline import Span
from pipenaut.actions import Action


@pytest.fixture(scope="module")
def measured():
    return train(build_schedule("1f1b", 3, 4), ModelConfig(dim=16, layers=3, batch_size=8), steps=2)


def load(path):
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-finite {c} in trace"))


def test_one_process_named_and_ordered_worker_tracks(tmp_path, measured):
    data = load(write_trace(tmp_path / "t.json", [("1f1b (measured)", measured.timeline)]))
    events = data["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    assert {e["pid"] for e in events} == {1}
    assert [e["args"]["name"] for e in meta if e["name"] == "process_name"] == ["1f1b (measured)"]
    names = {e["tid"]: e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in meta if e["name"] == "thread_sort_index"}
    assert sorted(names.values()) == ["worker 0", "worker 1", "worker 2"]
    assert [names[t] for t in sorted(order, key=order.get)] == ["worker 0", "worker 1", "worker 2"]
    for tid in names:  # 0 merges into the main thread, tid == pid *is* the main thread, > 2^32-1 collapses
        assert 0 < tid < 2**32 - 1 and tid != 1


def test_one_slice_per_action_with_args_and_waits_explained(tmp_path, measured):
    events = load(write_trace(tmp_path / "t.json", [("run", measured.timeline)]))["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    compute = [e for e in slices if e["cat"] in ("forward", "backward")]
    schedule = measured.schedule
    assert Counter(e["args"]["action"] for e in compute) == Counter(
        str(a) for row in schedule.actions for a in row for _ in range(2)
    )
    for e in compute:
        args = e["args"]
        assert set(args) >= {"stage", "microbatch", "step", "kind", "action"}
        assert e["name"] == f"{args['action']} {'forward' if args['kind'] == 'forward' else 'backward'}"
    waits = [e for e in slices if e["cat"] == "wait"]
    assert waits, "a 3-worker pipeline always waits somewhere"
    for e in waits:
        assert re.fullmatch(r"blocked on \dF\d from worker \d|blocked on \dB\d from worker \d", e["name"])
        assert e["args"]["waiting_for"] in e["name"]
    assert sum(e["cat"] == "optimizer" for e in slices) == 3 * 2


def test_timestamps_are_integers_and_slices_never_overlap_on_a_track(tmp_path, measured):
    events = load(write_trace(tmp_path / "t.json", [("run", measured.timeline)]))["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    by_track = {}
    for e in slices:
        assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
        by_track.setdefault(e["tid"], []).append(e)
    for track in by_track.values():
        track.sort(key=lambda e: e["ts"])
        for a, b in zip(track, track[1:]):
            assert a["ts"] + a["dur"] <= b["ts"]


def test_rounding_keeps_back_to_back_slices_apart(tmp_path):
    # Spans that touch at sub-microsecond times must not overlap once rounded.
    schedule = build_schedule("naive", 1, 1)
    timeline = simulate(schedule, Costs(F=1.0000004e-6, B=2.0000004e-6))
    events = load(write_trace(tmp_path / "t.json", [("run", timeline)]))["traceEvents"]
    f, b = [e for e in events if e["ph"] == "X"]
    assert f["ts"] + f["dur"] <= b["ts"]


def test_compare_trace_has_one_process_per_run_all_from_zero(tmp_path):
    runs = [(name, simulate(build_schedule(name, 2, 2), Costs())) for name in ("naive", "gpipe", "1f1b")]
    events = load(write_trace(tmp_path / "c.json", runs))["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names == {1: "naive", 2: "gpipe", 3: "1f1b"}
    for pid in names:
        assert min(e["ts"] for e in events if e["ph"] == "X" and e["pid"] == pid) == 0
    tids = [e["tid"] for e in events if e["name"] == "thread_name"]
    assert len(tids) == len(set(tids)) == 6


def test_the_file_appears_whole_or_not_at_all(tmp_path, measured):
    target = tmp_path / "t.json"
    bad = simulate(build_schedule("naive", 1, 1), Costs())
    bad.spans[0] = bad.spans[0]._replace(end=math.nan)
    with pytest.raises(ValueError):
        write_trace(target, [("bad", bad)])
    assert list(tmp_path.iterdir()) == []


# Perfetto colours a slice by a hash of its name with digits (and a space before them) removed.
# This is the UI's own hash (ui/src/base/hash.ts, v52), with JavaScript's float and int32 maths.
def perfetto_hue(name: str) -> int:
    key = re.sub(r"( )?\d+", "", name)
    h = 18652613
    for ch in key:
        x = ((h ^ ord(ch)) + 2**31) % 2**32 - 2**31
        v = int(float(16777619) * float(x)) % 2**32
        h = v - 2**32 if v >= 2**31 else v
    return abs(h) % 360


def hue_distance(a, b):
    d = abs(a - b) % 360
    return min(d, 360 - d)


def test_the_hash_port_reproduces_the_problem_it_avoids():
    assert hue_distance(perfetto_hue("F3"), perfetto_hue("B3")) < 10  # why plain "F3"/"B3" won't do


def test_kinds_get_clearly_different_colours_in_perfetto():
    spans = [Span(0, 0, 0, 1, kind, Action(1, kind, 3)) for kind in "FBIW"]
    spans += [Span(0, 0, 0, 1, "optimizer")]
    hues = [perfetto_hue(slice_name(s)) for s in spans]
    assert min(hue_distance(a, b) for a, b in itertools.combinations(hues, 2)) >= 35
    waits = [perfetto_hue(slice_name(Span(0, 0, 0, 1, "wait", Action(1, k, 3), 1))) for k in "FBI"]
    assert min(hue_distance(w, h) for w in waits for h in hues) >= 30


def test_overlapped_pairs_enclose_their_halves_and_multi_stage_slices_name_their_stage(tmp_path):
    result = train(build_schedule("dualpipev", 2, 4), ModelConfig(dim=8, layers=4, batch_size=8), steps=1)
    events = load(write_trace(tmp_path / "t.json", [("run", result.timeline)]))["traceEvents"]
    slices = [e for e in events if e["ph"] == "X"]
    pairs = [e for e in slices if e["cat"] == "overlapped"]
    assert pairs and all(re.fullmatch(r"\(\d+F\d+;\d+B\d+\) overlapped", e["name"]) for e in pairs)
    for pair in pairs:
        inside = [
            e for e in slices
            if e["tid"] == pair["tid"] and e is not pair and pair["ts"] <= e["ts"] and e["ts"] + e["dur"] <= pair["ts"] + pair["dur"]
        ]
        assert {e["args"].get("action") for e in inside} >= {pair["args"]["first"], pair["args"]["second"]}
    # a worker holding two stages: every compute slice says which stage it belongs to
    stages_on_worker_0 = {e["args"]["stage"] for e in slices if e["tid"] == 1001 and e["cat"] in ("forward", "backward", "input-grad", "weight-grad")}
    assert stages_on_worker_0 == {0, 3}
    assert hue_distance(perfetto_hue(pairs[0]["name"]), perfetto_hue("0B3 backward")) >= 30
