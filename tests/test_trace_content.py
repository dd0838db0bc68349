"""What a trace holds, checked on the files themselves (JSON, gzip, protobuf) without a browser."""

import gzip
import json
from collections import Counter, defaultdict

import pytest
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent

from pipenaut import Action, Costs, ModelConfig, build_schedule, simulate, train, write_trace


@pytest.fixture(scope="module")
def measured():
    return train(build_schedule("1f1b", 3, 4), ModelConfig(dim=16, layers=3, batch_size=8), steps=2)


def transfers(timeline):
    """Stage-to-stage hand-offs: each compute action that consumes a neighbour's output."""
    return sum(1 for s in timeline.spans if s.is_compute and timeline.schedule.upstream(s.action) is not None)


def json_events(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def follow_flows(events):
    """The (producer, consumer) slice names of every flow, as the UI chains v2 flows."""
    chains = defaultdict(list)
    for e in sorted((e for e in events if e["ph"] == "X" and "bind_id" in e), key=lambda e: e["ts"]):
        chains[e["bind_id"]].append(e)
    pairs = []
    for chain in chains.values():
        for a, b in zip(chain, chain[1:]):
            assert a["flow_out"] and b["flow_in"]
            pairs.append((a["args"]["action"], b["args"]["action"]))
        assert not chain[0]["flow_in"] and not chain[-1]["flow_out"]
    return pairs


def test_one_flow_per_transfer_from_producer_to_consumer(tmp_path, measured):
    data = json_events(write_trace(tmp_path / "t.json", [("run", measured.timeline)]))
    pairs = follow_flows(data["traceEvents"])
    assert len(pairs) == transfers(measured.timeline)
    schedule = measured.schedule
    for producer, consumer in pairs:
        assert str(schedule.upstream(Action.parse(consumer))) == producer


def test_memory_counters_per_worker(tmp_path, measured):
    events = json_events(write_trace(tmp_path / "t.json", [("run", measured.timeline)]))["traceEvents"]
    series = defaultdict(list)
    for e in events:
        if e["ph"] == "C":
            (key, value), = e["args"].items()
            series[e["name"], key].append(value)
    peaks = [max(series[f"worker {w}", "stashed microbatches"]) for w in range(3)]
    assert peaks == measured.timeline.peak_activations(0) == [3, 2, 1]
    assert all(max(series[f"worker {w}", "activation bytes"]) > 0 for w in range(3))
    static = [set(series[f"worker {w}", "parameter+gradient bytes"]) for w in range(3)]
    assert all(len(values) == 1 and values.pop() > 0 for values in static)  # a constant line


def test_steps_settings_and_waits(tmp_path, measured):
    meta = [{"schedule": "1f1b", "workers": 3, "bubble_measured": 0.25}]
    data = json_events(write_trace(tmp_path / "t.json", [("run", measured.timeline)], meta))
    events = data["traceEvents"]
    assert data["metadata"]["pipenaut"] == meta
    instants = [e["name"] for e in events if e["ph"] == "i"]
    assert instants == ["run settings: run", "step 0", "step 1"]
    settings = next(e for e in events if e["ph"] == "i" and e["name"].startswith("run settings"))
    assert settings["args"]["bubble_measured"] == 0.25 and settings["args"]["source"] == "measured"


def test_emulated_link_latency_shows_inside_the_wait(tmp_path):
    timeline = simulate(build_schedule("gpipe", 2, 1), Costs(F=1e-3, B=2e-3, latency=5e-4))
    events = json_events(write_trace(tmp_path / "t.json.gz", [("sim", timeline)]))["traceEvents"]
    transit = [e for e in events if e.get("cat") == "transit"]
    waits = {e["tid"]: e for e in events if e.get("cat") == "wait"}
    assert len(transit) == 2
    for e in transit:
        wait = waits[e["tid"]]
        assert wait["ts"] <= e["ts"] and e["ts"] + e["dur"] <= wait["ts"] + wait["dur"] and e["dur"] == 500


def test_gzip_is_chosen_by_extension(tmp_path, measured):
    path = write_trace(tmp_path / "t.json.gz", [("run", measured.timeline)])
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert json_events(path)["traceEvents"]


def test_pftrace_holds_the_same_content(tmp_path, measured):
    path = write_trace(tmp_path / "t.pftrace", [("run", measured.timeline)])
    trace = Trace()
    trace.ParseFromString(path.read_bytes())
    tracks = {p.track_descriptor.uuid: p.track_descriptor for p in trace.packet if p.HasField("track_descriptor")}
    threads = sorted((d.sibling_order_rank, d.thread.thread_name) for d in tracks.values() if d.HasField("thread"))
    assert threads == [(0, "worker 0"), (1, "worker 1"), (2, "worker 2")]
    units = Counter(d.counter.unit for d in tracks.values() if d.HasField("counter"))
    assert units and set(units) <= {1, 2, 3}  # count and bytes
    events = [p.track_event for p in trace.packet if p.HasField("track_event")]
    begins = [e for e in events if e.type == TrackEvent.TYPE_SLICE_BEGIN]
    ends = [e for e in events if e.type == TrackEvent.TYPE_SLICE_END]
    assert len(begins) == len(ends) == len(measured.timeline.spans)
    assert sum(1 for e in begins if e.flow_ids) == transfers(measured.timeline)  # each hand-off starts a flow
    names = Counter(e.name for e in begins)
    assert names["1F0 forward"] == 2  # one per step
    annotated = next(e for e in begins if e.name == "1F0 forward")
    assert {a.name for a in annotated.debug_annotations} >= {"stage", "microbatch", "step", "kind"}
    # nanoseconds straight from the measured timeline
    first = min((s for s in measured.timeline.spans if s.kind == "F" and str(s.action) == "1F0"), key=lambda s: s.start)
    begin = min(p.timestamp for p in trace.packet if p.HasField("track_event") and p.track_event.name == "1F0 forward")
    assert begin == round(first.start * 1e9)


def test_pftrace_nests_begin_and_end_per_track(tmp_path):
    result = train(build_schedule("dualpipev", 2, 4), ModelConfig(dim=8, layers=4, batch_size=8), steps=1)
    trace = Trace()
    trace.ParseFromString(write_trace(tmp_path / "d.pftrace", [("dp", result.timeline)]).read_bytes())
    depth, deepest = defaultdict(int), 0
    for p in sorted((p for p in trace.packet if p.HasField("track_event")), key=lambda p: p.timestamp):
        e = p.track_event
        if e.type == TrackEvent.TYPE_SLICE_BEGIN:
            depth[e.track_uuid] += 1
            deepest = max(deepest, depth[e.track_uuid])
        elif e.type == TrackEvent.TYPE_SLICE_END:
            depth[e.track_uuid] -= 1
            assert depth[e.track_uuid] >= 0
    assert deepest >= 2 and all(d == 0 for d in depth.values())  # overlapped pairs hold their halves
