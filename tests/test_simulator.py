"""The simulator against the textbook, and validation of broken schedules."""

from fractions import Fraction

import pytest

from pipenaut import Action, Costs, Schedule, ScheduleError, build_schedule, parse_schedule, simulate, validate


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_unit_costs_reproduce_the_textbook_for_4_workers_8_microbatches(name):
    timeline = simulate(build_schedule(name, 4, 8), Costs(F=1, B=2))
    assert timeline.makespan() == 33
    assert Fraction(timeline.bubble()).limit_denominator(100) == Fraction(3, 11)


def test_naive_bubble_is_three_quarters():
    timeline = simulate(build_schedule("naive", 4, 8), Costs(F=1, B=2))
    assert timeline.makespan() == 4 * 8 * 3  # the whole batch as one microbatch of cost 8x
    assert timeline.bubble() == pytest.approx(3 / 4)


def test_peak_activations_of_1f1b_and_gpipe():
    assert simulate(build_schedule("1f1b", 4, 8), Costs(F=1, B=2)).peak_activations() == [4, 3, 2, 1]
    assert simulate(build_schedule("gpipe", 4, 8), Costs(F=1, B=2)).peak_activations() == [8, 8, 8, 8]


@pytest.mark.parametrize("p,m", [(2, 2), (3, 5), (8, 16), (5, 3)])
@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_textbook_bubble_holds_for_any_size(name, p, m):
    timeline = simulate(build_schedule(name, p, m), Costs(F=1, B=2))
    assert timeline.makespan() == pytest.approx(3 * (m + p - 1))
    assert timeline.bubble() == pytest.approx((p - 1) / (m + p - 1))


def test_latency_delays_every_transfer():
    timeline = simulate(build_schedule("gpipe", 2, 1), Costs(F=1, B=2, latency=0.5))
    # F on w0, transfer, F on w1, B on w1, transfer, B on w0
    assert timeline.makespan() == pytest.approx(1 + 0.5 + 1 + 2 + 0.5 + 2)
    waits = [s for s in timeline.spans if s.kind == "wait"]
    assert [(s.worker, str(s.action)) for s in waits] == [(1, "0F0"), (0, "1B0")]


def test_stage_scale_makes_a_stage_slower():
    timeline = simulate(build_schedule("gpipe", 2, 1), Costs(F=1, B=2, stage_scale=(1.0, 3.0)))
    assert timeline.makespan() == pytest.approx(1 + 3 + 6 + 2)


def test_b_defaults_to_i_plus_w_and_parse_splits_b():
    assert Costs(F=1, I=2, W=3).of(Action(0, "B", 0)) == 5
    costs = Costs.parse("F=2,B=4")
    assert (costs.F, costs.I, costs.W, costs.full_backward) == (2, 2, 2, 4)


@pytest.mark.parametrize("text", ["F=1,X=2", "F", "F=abc", "F=-1", "F=nan", "F=inf"])
def test_bad_costs_are_refused(text):
    with pytest.raises(ValueError):
        Costs.parse(text)


def test_simulation_of_a_big_cluster_is_complete():
    timeline = simulate(build_schedule("1f1b", 64, 256), Costs(F=1, B=2))
    assert timeline.makespan() == 3 * (256 + 63)


def refuse(text, match):
    with pytest.raises(ScheduleError, match=match):
        validate(parse_schedule(text))


def test_deadlock_names_the_cycle():
    refuse(
        "0F0 0B0 0F1 0B1\n1F1 1B1 1F0 1B0",
        r"^deadlock: worker 0 waits for 1B0 \(worker 1\) to run 0B0, which is ordered after 1F1, "
        r"which needs 0F1 from worker 0;",
    )


def test_deadlock_report_follows_the_chain_into_the_cycle():
    # Worker 0 is only a victim; the cycle is between workers 1 and 2.
    refuse(
        "0F0 0F1 0B0 0B1\n1F0 1B0 1F1 1B1\n2F1 2B1 2F0 2B0",
        r"^deadlock: worker 0 waits for 1B0 \(worker 1\) to run 0B0, which needs 2B0 from worker 2, "
        r"which is ordered after 2F1, which needs 1F1 from worker 1; reorder",
    )


def test_missing_backward():
    refuse("0F0 0F1 0B0\n1F0 1B0 1F1 1B1", r"the backward of stage 0 microbatch 1 is missing: add 0B1 \(or 0I1 and 0W1\)")


def test_missing_forward():
    refuse("0F0 0B0 0B1\n1F0 1B0 1F1 1B1", "0F1 is missing")


def test_duplicate_action():
    refuse("0F0 0F0 0B0\n1F0 1B0", "0F0 appears twice")


def test_backward_before_forward_on_one_worker():
    refuse("0B0 0F0\n1F0 1B0", "on worker 0, 0B0 comes before 0F0, which it needs; move 0B0 after 0F0")


def test_weight_grad_before_input_grad():
    refuse("0F0 0W0 0I0\n1F0 1B0", "on worker 0, 0W0 comes before 0I0")


def test_split_backward_needs_both_halves():
    refuse("0F0 0I0\n1F0 1B0", "0I0 has no matching 0W0")
    refuse("0F0 0B0 0I0 0W0\n1F0 1B0", "0B0 and 0I0 both appear")


def test_stage_on_the_wrong_worker_and_out_of_range_values():
    f, b = Action(0, "F", 0), Action(0, "B", 0)
    wrong = Schedule("x", (0, 1), 1, ((f, b, Action(1, "F", 0)), (Action(1, "B", 0),)))
    with pytest.raises(ScheduleError, match="worker 0 runs 1F0, but stage 1 lives on worker 1"):
        validate(wrong)
    out_of_range = Schedule("x", (0,), 1, ((f, b, Action(0, "F", 1)),))
    with pytest.raises(ScheduleError, match="microbatch 1 is out of range; there are 1 microbatches"):
        validate(out_of_range)
    no_stage = Schedule("x", (0,), 1, ((f, b, Action(3, "F", 0)),))
    with pytest.raises(ScheduleError, match="names stage 3, but the model has 1 stages"):
        validate(no_stage)
