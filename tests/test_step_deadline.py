"""The step deadline's arithmetic: generous for slow models, none before the task knows its step time."""

from launcher.task.step_deadline import StepDeadline


def test_no_deadline_before_the_first_step_nor_when_turned_off():
    assert StepDeadline(60).secs() == 0
    off = StepDeadline(0)
    off.took(0.1)
    assert off.secs() == 0


def test_fast_steps_get_the_floor():
    deadline = StepDeadline(60)
    for _ in range(50):
        deadline.took(0.05)
    assert deadline.secs() == 60


def test_slow_steps_get_ten_times_the_slowest_recent_one():
    deadline = StepDeadline(60, window=3)
    for secs in (2.0, 9.0, 3.0):
        deadline.took(secs)
    assert deadline.secs() == 90
    for _ in range(3):  # the slow step has left the window
        deadline.took(1.0)
    assert deadline.secs() == 60
