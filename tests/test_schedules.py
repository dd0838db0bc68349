import pytest

from pipenaut import SCHEDULES, ScheduleError, build_schedule, validate


def short(schedule, worker):
    """A worker's list without stage numbers (one stage per worker), e.g. 'F0 F1 B0'."""
    return " ".join(f"{a.kind}{a.microbatch}" for a in schedule.actions[worker])


def test_1f1b_4_workers_8_microbatches_is_exact():
    s = build_schedule("1f1b", 4, 8)
    assert short(s, 0) == "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7"
    assert short(s, 1) == "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 F6 B4 F7 B5 B6 B7"
    assert short(s, 2) == "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 F6 B5 F7 B6 B7"
    assert short(s, 3) == "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5 F6 B6 F7 B7"
    assert s.placement == (0, 1, 2, 3)
    assert all(a.stage == w for w, row in enumerate(s.actions) for a in row)


def test_1f1b_with_fewer_microbatches_than_workers_has_fewer_warmup_forwards():
    s = build_schedule("1f1b", 4, 2)
    assert short(s, 0) == "F0 F1 B0 B1"
    assert short(s, 3) == "F0 B0 F1 B1"
    validate(s)


def test_gpipe_is_all_forwards_then_all_backwards():
    s = build_schedule("gpipe", 3, 4)
    assert all(short(s, w) == "F0 F1 F2 F3 B0 B1 B2 B3" for w in range(3))


def test_naive_runs_one_microbatch_at_a_time():
    s = build_schedule("naive", 2, 3)
    assert short(s, 0) == short(s, 1) == "F0 B0 F1 B1 F2 B2"


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("workers", range(1, 9))
def test_every_builder_gives_a_valid_complete_schedule_for_any_size(name, workers):
    info = SCHEDULES[name]
    for microbatches in range(1, 20):
        if name == "dualpipev" and microbatches < 2 * workers:
            continue
        for virtual in [1, 2, 3] if info.stages_per_worker is None else [None]:
            s = build_schedule(name, workers, microbatches, virtual)
            validate(s)
            v = s.stages // workers
            assert s.workers == workers and s.microbatches == microbatches
            split = sum(a.kind == "I" for row in s.flat for a in row)  # each split backward adds a W
            assert sum(len(row) for row in s.flat) == 2 * s.stages * microbatches + split
            assert v == (virtual or info.stages_per_worker or 2)


def test_unknown_schedule_lists_the_valid_ones():
    with pytest.raises(ScheduleError, match="choose one of: naive, gpipe, 1f1b, interleaved, looped-bfs, zb-h1, zb-h2, zb-v, dualpipev"):
        build_schedule("zigzag", 4, 8)


@pytest.mark.parametrize("workers,microbatches", [(0, 4), (4, 0)])
def test_builders_refuse_empty_pipelines(workers, microbatches):
    with pytest.raises(ScheduleError):
        build_schedule("1f1b", workers, microbatches)


@pytest.mark.parametrize("args", [(None, 4, 8), ("1f1b", 4, "8"), ("1f1b", 2.5, 8), ("1f1b", True, 8)])
def test_builders_refuse_values_of_the_wrong_type(args):
    with pytest.raises(ScheduleError):
        build_schedule(*args)


def test_validate_refuses_text_with_a_hint():
    with pytest.raises(TypeError, match="parse_schedule"):
        validate("0F0 0B0")
