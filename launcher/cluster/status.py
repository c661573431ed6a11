"""Status lines: how a task tells the launcher what it is doing, over its own stdout.

A task prints `@launcher-status {json}` lines; the launcher takes them out of the output stream (they
never reach the console or the log) and keeps each task's state from them. Stdout works the same under
every backend that streams a task's output back, so no side channel is needed.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

PREFIX = "@launcher-status "

# Events, in the order a task sends them.
READY = "ready"            # flags checked and model imported; a gated task now waits for GO
SESSION = "session"        # session ready; "step" is the global step it starts from
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


def emit(event: str, **fields) -> None:
    sys.stdout.write(PREFIX + json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def check_failure(failure: dict) -> dict:
    """The fields of a FAILURE event's "failure" that have the right type; the others are dropped."""
    return {k: v for k, v in failure.items()
            if k in FAILURE_FIELDS and isinstance(v, FAILURE_FIELDS[k]) and not isinstance(v, bool)}


def parse(line: str) -> Optional[dict]:
    """The status in `line`, or None for an ordinary output line."""
    if not line.startswith(PREFIX):
        return None
    try:
        status = json.loads(line[len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return status if isinstance(status, dict) and "event" in status else None
