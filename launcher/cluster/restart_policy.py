"""When a task that ended gets another process, in the spirit of Kubeflow's TFJob `restartPolicy`."""

from __future__ import annotations

import enum

from launcher.cluster import exit_codes


class RestartPolicy(enum.Enum):
    # Restart what a signal or preemption ended (128+); never a bad input or an exception in training,
    # which would fail the same way again. Kubeflow's `ExitCode`, and the default.
    EXIT_CODE = "exit_code"
    # Restart any task that did not exit 0.
    ON_FAILURE = "on_failure"
    NEVER = "never"

    def should_restart(self, returncode: int, restarts: int, max_restarts: int) -> bool:
        if returncode == exit_codes.OK or restarts >= max_restarts or self is RestartPolicy.NEVER:
            return False
        return self is RestartPolicy.ON_FAILURE or exit_codes.is_retryable(returncode)
