"""A call waited for at most a given time: its result, its error, or left behind (`bounded_call`)."""

import threading

import pytest

from launcher.task import bounded_call

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def fresh_flag():
    bounded_call.abandoned.clear()
    yield
    bounded_call.abandoned.clear()


def test_a_call_that_ends_in_time_gives_its_result_in_the_caller():
    assert bounded_call.within(5, lambda: 42, "answer") == 42
    assert not bounded_call.abandoned.is_set()


def test_what_the_call_raised_is_raised_in_the_caller():
    def fail():
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        bounded_call.within(5, fail, "failing")
    assert not bounded_call.abandoned.is_set()


def test_a_call_that_does_not_end_in_time_is_left_behind_and_said_so():
    release = threading.Event()
    ended = threading.Event()

    def hang():
        release.wait()
        ended.set()

    with pytest.raises(bounded_call.Abandoned, match="hang had not finished after 0.2s"):
        bounded_call.within(0.2, hang, "hang")
    assert bounded_call.abandoned.is_set()  # the process will not wait for it at exit
    left = [t for t in threading.enumerate() if t.name == "hang"]
    assert len(left) == 1 and left[0].daemon and left[0].is_alive()
    release.set()
    left[0].join(5)
    assert ended.is_set()
