"""The exit-code contract and the restart policies built on it."""

from __future__ import annotations

import pytest

from launcher.cluster import exit_codes
from launcher.cluster.restart_policy import RestartPolicy


@pytest.mark.parametrize("returncode, text", [
    (-9, "killed by SIGKILL"),
    (143, "exited 143 (SIGTERM)"),
    (130, "exited 130 (SIGINT)"),
    (1, "exited 1 (training failed)"),
    (2, "exited 2 (bad input)"),
    (0, "exited 0"),
])
def test_describe(returncode, text):
    assert exit_codes.describe(returncode) == text


@pytest.mark.parametrize("returncode, retryable", [(-9, True), (-15, True), (143, True), (128, True),
                                                   (0, False), (1, False), (2, False), (127, False)])
def test_is_retryable(returncode, retryable):
    assert exit_codes.is_retryable(returncode) is retryable


@pytest.mark.parametrize("policy, returncode, restarts, expected", [
    (RestartPolicy.EXIT_CODE, -9, 0, True),
    (RestartPolicy.EXIT_CODE, 143, 2, True),
    (RestartPolicy.EXIT_CODE, 143, 3, False),  # max_restarts used up
    (RestartPolicy.EXIT_CODE, 1, 0, False),
    (RestartPolicy.EXIT_CODE, 2, 0, False),
    (RestartPolicy.EXIT_CODE, 0, 0, False),
    (RestartPolicy.ON_FAILURE, 1, 0, True),
    (RestartPolicy.ON_FAILURE, 1, 3, False),
    (RestartPolicy.ON_FAILURE, 0, 0, False),
    (RestartPolicy.NEVER, -9, 0, False),
    (RestartPolicy.NEVER, 1, 0, False),
])
def test_should_restart(policy, returncode, restarts, expected):
    assert policy.should_restart(returncode, restarts, max_restarts=3) is expected
