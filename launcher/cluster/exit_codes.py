"""The exit-code contract, shared by the launcher and every task.

Codes below 128 are permanent: retrying the same input gives the same result. Codes of 128 and above are
what a process killed or preempted by a signal reports, and are worth a restart. Kubeflow's `ExitCode`
restart policy draws the same line, so a TFJob built from a spec keeps these semantics.
"""

import signal

OK = 0
# A Python exception in training (user code included): restarting runs into it again.
TRAINING_FAILED = 1
# Bad input (spec, flags, model module, model directory, checkpoints that do not match the model).
BAD_INPUT = 2
# A task hung (no progress for --hang_secs) and --on_hang abort stopped the run; the chief saved where it could.
# Below 128: an engine's restart policy should not retry it blindly, the verdict says what to fix.
HUNG = 3
# Asked to stop by SIGTERM (a preempted machine); the chief has saved a checkpoint first.
PREEMPTED = 128 + signal.SIGTERM
# Stopped by SIGINT (Ctrl-C) or SIGHUP; like SIGTERM, a checkpoint was saved first.
INTERRUPTED = 128 + signal.SIGINT


def is_retryable(returncode: int) -> bool:
    """Whether a task that ended with `returncode` (as `Popen` reports it) is worth restarting."""
    return returncode < 0 or returncode >= 128


def describe(returncode: int) -> str:
    """`returncode` in words: a signal by its name, otherwise what the contract says the code means."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}" if returncode < 0 else f"exited {returncode} ({name})"
    return {
        OK: "exited 0",
        TRAINING_FAILED: "exited 1 (training failed)",
        BAD_INPUT: "exited 2 (bad input)",
        HUNG: "exited 3 (hung)",
    }.get(returncode, f"exited {returncode}")
