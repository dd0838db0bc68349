import pytest

from pipenaut import Action, ActionError, ScheduleError, parse_schedule


@pytest.mark.parametrize("text", ["0F3", "2B0", "1I5", "1W5", "12F103"])
def test_parse_and_print_round_trip(text):
    action = Action.parse(text)
    assert str(action) == text
    assert Action.parse(str(action)) == action


def test_parse_reads_the_parts():
    assert Action.parse("2B0") == Action(stage=2, kind="B", microbatch=0)
    assert Action.parse(" 1i5 ").kind == "I"


@pytest.mark.parametrize("text", ["F3", "0X3", "0F", "0F3x", "", "-1F2"])
def test_malformed_actions_are_refused(text):
    with pytest.raises(ActionError):
        Action.parse(text)


def test_schedule_text_round_trips():
    text = "0F0 0F1 0B0 0B1\n1F0 1B0 1F1 1B1"
    schedule = parse_schedule(text)
    assert schedule.format() == text
    assert parse_schedule(schedule.format()) == schedule
    assert schedule.placement == (0, 1)
    assert schedule.microbatches == 2


def test_schedule_file_accepts_commas_comments_and_worker_prefixes():
    schedule = parse_schedule("# a plan\nworker 0: 0F0, 0B0\n\nrank 1: 1F0,1B0,\n")
    assert schedule.actions == ((Action(0, "F", 0), Action(0, "B", 0)), (Action(1, "F", 0), Action(1, "B", 0)))


def test_a_stage_on_two_workers_is_refused():
    with pytest.raises(ScheduleError, match="stage 0 appears on worker 0 and worker 1"):
        parse_schedule("0F0 0B0\n0F1 0B1")


def test_bad_token_names_its_line():
    with pytest.raises(ScheduleError, match="line 2"):
        parse_schedule("0F0 0B0\n1F0 1Q0")
