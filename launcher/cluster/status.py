"""Status lines: how a task tells the launcher what it is doing, over its own stdout.

A task prints `@launcher-status {json}` lines; the launcher takes them out of the output stream (they
never reach the console or the log) and keeps each task's state from them. Stdout works the same under
every backend that streams a task's output back, so no side channel is needed.

Any program can print such a line (a model's own `print`, a logged message with a newline in it), so a
status line is untrusted input: `parse` keeps only the fields its event defines, each of the type the
event's schema gives, and drops the rest. A field of the wrong type is dropped, never raised on.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Optional

PREFIX = "@launcher-status "
# Longer lines are not status lines: nothing this project sends comes near, and a huge line is no status.
MAX_LINE = 64 * 1024

# Events, in the order a task sends them.
READY = "ready"            # flags checked and model imported; a gated task now waits for GO
SESSION = "session"        # session ready; "step" is the global step it starts from
NO_SESSION = "no_session"  # creating a session (its first, or again after one failed): none until SESSION
FIRST_STEP = "first_step"  # the first training step of this process ran
PROGRESS = "progress"      # periodic: "step" (global) and "local_steps" (this process)
DONE = "done"              # training loop ended normally
EVAL = "eval"              # evaluator: "step" of the checkpoint and its "metrics"
EARLY_STOP = "early_stop"  # evaluator: training should end now; "step" of the deciding score, "reason"
FAILURE = "failure"        # the task's last word before a failing exit: "failure", see FAILURE_FIELDS

# A failure's fields and their types, in the manner of torch elastic's error file: what the task knows of
# its own exception, so that the launcher need not guess it from the log.
FAILURE_FIELDS = {
    "type": str,        # the exception's class name ("ResourceExhaustedError", "OSError")
    "message": str,     # its message (the first 4000 characters; the root cause shows its first line)
    "frame": str,       # the innermost frame in the user's own code: "file:line in func: code"
    "errno": int,       # an OSError's errno
    "filename": str,    # an OSError's path
    "tf_code": str,     # a TensorFlow OpError's code name ("UNAVAILABLE", "RESOURCE_EXHAUSTED")
}


def _count(value: object) -> bool:
    """A step or a number of steps: an int (a bool is not one), not negative."""
    return type(value) is int and 0 <= value < 2 ** 63


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 1000


def _metrics(value: object) -> bool:
    """Metric name -> number (ints and floats, NaN included: a diverged loss is a metric too)."""
    return isinstance(value, dict) and len(value) <= 100 and all(
        isinstance(k, str) and len(k) <= 200 and type(v) in (int, float) for k, v in value.items())


# The fields each event may carry, and the check each field's value must pass.
SCHEMA: dict[str, dict[str, Callable[[object], bool]]] = {
    READY: {},
    SESSION: {"step": _count},
    NO_SESSION: {},
    FIRST_STEP: {"step": _count},
    PROGRESS: {"step": _count, "local_steps": _count},
    DONE: {"step": _count, "local_steps": _count},
    EVAL: {"step": _count, "metrics": _metrics},
    EARLY_STOP: {"step": _count, "reason": _text},
    FAILURE: {"failure": lambda value: isinstance(value, dict) and len(value) <= len(FAILURE_FIELDS) * 2},
}


def emit(event: str, **fields) -> bool:
    """Send a status line; False if it could not be written (the launcher is gone: its pipe is closed).

    A task outlives its launcher long enough to save its work (see `task.parent_watch`), so a write to a
    closed pipe must not raise into the hook that reports."""
    try:
        sys.stdout.write(PREFIX + json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
        return True
    except (OSError, ValueError):  # EPIPE; ValueError: stdout already closed at exit
        return False


def check_failure(failure: dict) -> dict:
    """The fields of a FAILURE event's "failure" that have the right type; the others are dropped."""
    return {k: v for k, v in failure.items()
            if k in FAILURE_FIELDS and isinstance(v, FAILURE_FIELDS[k]) and not isinstance(v, bool)}


def parse(line: str) -> Optional[dict]:
    """The status in `line` with only its event's well-typed fields, or None for an ordinary output line."""
    if not line.startswith(PREFIX) or len(line) > MAX_LINE:
        return None
    try:
        status = json.loads(line[len(PREFIX):])
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        return None
    if not isinstance(status, dict) or not isinstance(status.get("event"), str):
        return None
    event = status["event"]
    fields = SCHEMA.get(event, {})  # an event this launcher does not know: its name only, for the log
    return {"event": event, **{name: status[name] for name, valid in fields.items()
                               if name in status and valid(status[name])}}
