"""The progress line and the console it is shown on (here not a terminal)."""

from __future__ import annotations

import io
import types

import pytest

from launcher.launch import console as console_module
from launcher.launch import progress
from launcher.launch.console import Console, is_noise

STATES = [("chief:0", "training"), ("ps:0", "serving")]


@pytest.mark.parametrize("step, target, rate, line", [
    (340, 1000, 120.5, "step 340/1000 (34%) | 120.5 steps/s | ETA 5s | chief:0 training, ps:0 serving"),
    (None, 1000, None, "step -/1000 | chief:0 training, ps:0 serving"),
    (0, 3700, 1.0, "step 0/3700 (0%) | 1.0 steps/s | ETA 1h01m | chief:0 training, ps:0 serving"),
    (0, 125, 1.0, "step 0/125 (0%) | 1.0 steps/s | ETA 2m05s | chief:0 training, ps:0 serving"),
    (1000, 1000, 50.0, "step 1000/1000 (100%) | 50.0 steps/s | chief:0 training, ps:0 serving"),
])
def test_render(step, target, rate, line):
    assert progress.render(step, target, rate, STATES) == line


@pytest.mark.parametrize("samples, per_sec", [
    ([], None),
    ([(0.0, 0)], None),
    ([(0.0, 0), (10.0, 100)], 10.0),
    ([(0.0, 0), (5.0, 10), (20.0, 100)], 6.0),  # the sample older than the window is dropped
    ([(0.0, 100), (1.0, 50)], None),  # the step went back (a restore): no rate
])
def test_rate(samples, per_sec):
    rate = progress.Rate(window_secs=10.0)
    for now, step in samples:
        rate.add(step, now=now)
    assert rate.per_sec() == per_sec


def test_console_prints_lines_and_plain_progress_at_most_every_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(console_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    stream = io.StringIO()
    console = Console(stream, plain_every_secs=10.0)
    console.line("[chief:0] hello\n")
    for now, text, force in [(100, "p1", False), (105, "p2", False), (106, "p3", True),
                             (112, "p4", False), (116, "p5", False)]:
        clock[0] = now
        console.progress(text, force=force)
    console.close()
    assert stream.getvalue() == "[chief:0] hello\np1\np3\np5\n"


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("I0000 00:00:1795659342.436713    1994 port.cc:153] oneDNN custom operations are on.", True),
    ("W0000 00:00:1795659342.5 1994 something.cc:1] anything before absl logging", True),
    ("Traceback (most recent call last):", False),
    ("ValueError: learning_rate must be positive", False),
    ("I0612 10:00:00.1 1994 training.py:40] step 100", False),
])
def test_is_noise(line, noise):
    assert is_noise(line) is noise


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_console_on_a_terminal_redraws_progress_in_place_below_task_output():
    terminal = _Terminal()
    console = Console(terminal)
    console.progress("step 1/10")
    console.progress("step 2/10")
    console.line("[worker:0] hello")
    console.close()
    # Each redraw clears the line; task output goes above the progress line, which is then redrawn.
    assert terminal.getvalue() == ("\r\033[Kstep 1/10" "\r\033[Kstep 2/10"
                                   "\r\033[K[worker:0] hello\nstep 2/10" "\n")
