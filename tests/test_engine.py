"""The threaded engine: exact gradients of the sequential reference, any valid order, clean failure."""

import threading
import time

import numpy as np
import pytest

from pipenaut import (
    SCHEDULES,
    ModelConfig,
    PipelineError,
    ScheduleError,
    build_schedule,
    parse_schedule,
    train,
    train_sequential,
)
from pipenaut.engine import Engine
from pipenaut.model import Adam, build_stages
from pipenaut.training import make_batch

STEPS = 3


def assert_matches_reference(result, config, steps=STEPS):
    reference, losses = train_sequential(config, steps)
    assert len(result.parameters()) == len(reference)
    for got, want in zip(result.parameters(), reference):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-9)


def reference_cases():
    """(schedule, workers, microbatches, virtual, batch): uneven layer cuts and batch splits."""
    for name, info in SCHEDULES.items():
        for workers, microbatches, batch in [(4, 8, 32), (3, 7, 30), (4, 3, 10), (2, 5, 11), (1, 3, 9)]:
            if name == "dualpipev":  # needs at least 2p microbatches
                microbatches, batch = 2 * workers + 1, max(batch, 2 * workers + 3)
            for virtual in ([1, 2, 3] if info.stages_per_worker is None else [None]):
                yield name, workers, microbatches, virtual, batch


@pytest.mark.parametrize("name,workers,microbatches,virtual,batch", list(reference_cases()))
def test_every_schedule_matches_the_sequential_reference(name, workers, microbatches, virtual, batch):
    schedule = build_schedule(name, workers, microbatches, virtual)
    config = ModelConfig(dim=12, layers=schedule.stages + 1, batch_size=batch, classes=5, seed=7, dtype="float64")
    result = train(schedule, config, STEPS)
    assert_matches_reference(result, config)


def test_a_user_made_order_runs_the_same_way():
    # Not a built-in: worker 1 runs its backwards in reverse microbatch order.
    schedule = parse_schedule("0F0 0F1 0F2 0B2 0B1 0B0\n1F0 1F1 1F2 1B2 1B1 1B0")
    config = ModelConfig(dim=8, layers=2, batch_size=9, classes=3, dtype="float64")
    assert_matches_reference(train(schedule, config, STEPS), config)


def test_split_backward_actions_run_in_the_engine():
    # I and W as separate actions, W deferred to the end, as zero-bubble schedules do.
    schedule = parse_schedule("0F0 0F1 0I0 0I1 0W0 0W1\n1F0 1I0 1F1 1I1 1W1 1W0")
    config = ModelConfig(dim=8, layers=3, batch_size=6, classes=3, dtype="float64")
    result = train(schedule, config, STEPS)
    assert_matches_reference(result, config)
    kinds = {s.kind for s in result.timeline.spans}
    assert {"F", "I", "W"} <= kinds and "B" not in kinds


def test_loss_falls_with_the_default_model():
    result = train(build_schedule("1f1b", 2, 4), ModelConfig(), steps=30)
    assert result.losses[-1] < 0.6 * result.losses[0]


def test_timeline_records_every_action_wait_and_optimizer_step():
    schedule = build_schedule("1f1b", 3, 4)
    result = train(schedule, ModelConfig(dim=16, layers=3, batch_size=8), steps=2)
    timeline = result.timeline
    for step in range(2):
        spans = timeline.spans_of_step(step)
        ran = [[s.action for s in spans if s.worker == w and s.is_compute] for w in range(3)]
        assert ran == [list(row) for row in schedule.actions]  # each worker in schedule order
        assert sum(s.kind == "optimizer" for s in spans) == 3
        for s in spans:
            assert s.end >= s.start
            if s.kind == "wait":  # a wait names the producer, on another worker
                assert s.peer != s.worker and s.peer == schedule.worker_of(s.action)
    # The last worker's first forward can only start after worker 0's forward of microbatch 0.
    first_forwards = {s.worker: s for s in timeline.spans_of_step(0) if s.kind == "F" and s.action.microbatch == 0}
    assert first_forwards[2].start >= first_forwards[0].end
    assert timeline.step_starts[0] == 0.0
    # Per-worker spans do not overlap.
    for w in range(3):
        mine = sorted((s for s in timeline.spans if s.worker == w), key=lambda s: s.start)
        assert all(a.end <= b.start for a, b in zip(mine, mine[1:]))


def test_measured_metrics_are_consistent():
    result = train(build_schedule("gpipe", 2, 4), ModelConfig(dim=32, layers=2, batch_size=16), steps=3)
    timeline, step = result.timeline, result.timeline.typical_step()
    makespan = timeline.makespan(step)
    assert 0 < makespan <= timeline.step_time(step)
    busy, idle = timeline.busy(step), timeline.idle(step)
    assert all(b + i == pytest.approx(makespan) for b, i in zip(busy, idle))
    assert timeline.bubble(step) == pytest.approx(sum(idle) / (2 * makespan))
    assert timeline.peak_activations(step) == [4, 4]
    assert set(timeline.mean_costs()) == {"F", "B"}


def _running_workers():
    return [t for t in threading.enumerate() if t.name.startswith("pipenaut-worker")]


def test_a_failing_worker_stops_everyone_with_one_clear_error():
    config = ModelConfig(dim=8, layers=4, batch_size=8)
    schedule = build_schedule("1f1b", 4, 8)
    stages = build_stages(config, 4)
    original, calls = stages[2].forward, []

    def forward_failing_in_step_one(mb, x, *args):
        calls.append(mb)
        if len(calls) > 8 and mb == 3:  # step 0 passes; step 1 fails at microbatch 3
            raise FloatingPointError("boom")
        return original(mb, x, *args)

    stages[2].forward = forward_failing_in_step_one
    engine = Engine(schedule, stages, [Adam(s.params(), 1e-3) for s in stages], lambda step: make_batch(config, 8, step))
    started = time.perf_counter()
    with pytest.raises(PipelineError, match=r"^worker 2 failed while running 2F3 in step 1: FloatingPointError: boom$"):
        engine.run(steps=50)
    assert time.perf_counter() - started < 5
    assert _running_workers() == []


def test_a_deadlocking_schedule_is_refused_before_any_thread_starts():
    schedule = parse_schedule("0F0 0B0 0F1 0B1\n1F1 1B1 1F0 1B0")
    with pytest.raises(ScheduleError, match="deadlock"):
        train(schedule, ModelConfig(dim=4, layers=2, batch_size=2), steps=1)
    assert _running_workers() == []


def test_bad_training_settings_are_refused_before_threads_start():
    with pytest.raises(ValueError, match="a batch of 8 cannot be cut into 16 microbatches"):
        train(build_schedule("gpipe", 2, 16), ModelConfig(batch_size=8, dim=4, layers=2))
    with pytest.raises(ValueError, match="steps must be at least 1"):
        train(build_schedule("gpipe", 2, 2), ModelConfig(batch_size=8, dim=4, layers=2), steps=0)
    with pytest.raises(ValueError, match="use at least 4 layers"):
        train(build_schedule("gpipe", 4, 2), ModelConfig(batch_size=8, dim=4, layers=2))
    assert _running_workers() == []


@pytest.mark.parametrize(
    "field,value", [("dim", 0), ("layers", 0), ("batch_size", -1), ("seed", -1), ("classes", 1), ("learning_rate", 0.0), ("dtype", "int8")]
)
def test_model_config_refuses_impossible_values(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})
