"""--step_timeout_secs on a real task: a step that gets no answer in time is cancelled, the log says so in
the words the docs quote, and training goes on in a new session to its target; a session creation cut short
in a hook is retried the same way."""

import re

from conftest import checkpoint_steps, last_run

LINE = re.compile(r"a step had no answer within (\d+)s \(--step_timeout_secs\): cancelled; re-creating the session")


def test_a_stalled_step_is_cancelled_and_training_goes_on(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.stall",
                        "--train_steps", "100", "--chief_flags=--step_timeout_secs=1 --stall_secs=30")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    said = LINE.findall((model_dir / "logs" / "chief-0.log").read_text())
    # The deadline is 1 s, or 10 times the slowest recent step where that is longer (a busy machine).
    assert said and all(int(secs) < 30 for secs in said), said
    chief = last_run(model_dir)["tasks"][0]
    assert chief["exit_codes"] == [0] and chief["restarts"] == 0  # the same process: a new session only
    assert checkpoint_steps(model_dir)[-1] == 100


def test_a_session_creation_cut_short_in_a_hook_is_retried(runner, tmp_path):
    """A moved worker was seen ending with exit 1: a peer's restart cancelled a hook's `run` while its
    session was made, and MonitoredSession retries only Aborted and Unavailable errors."""
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model",
                        "models.interrupted_session", "--train_steps", "50")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    log = (model_dir / "logs" / "chief-0.log").read_text()
    assert "session creation interrupted in _CutShortOnce (CancelledError)" in log, log[-3000:]
    chief = last_run(model_dir)["tasks"][0]
    assert chief["exit_codes"] == [0] and chief["restarts"] == 0  # the same process: a new session only
    assert checkpoint_steps(model_dir)[-1] == 50


def test_the_end_of_a_session_cut_short_by_a_peer_is_finished_in_a_new_session(runner, tmp_path):
    """A chief whose ps was lost as it saved its final checkpoint was seen ending with exit 1 (the hooks'
    end() is the one place MonitoredSession does not recover from a lost peer)."""
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--model",
                        "models.interrupted_end", "--train_steps", "50")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    log = (model_dir / "logs" / "chief-0.log").read_text()
    assert "the end of training was interrupted by a peer (UnavailableError); a new session finishes it" in log, \
        log[-3000:]
    assert log.count("Saving checkpoints for 50 ") == 1, log[-3000:]  # the final save, once, in the new session
    chief = last_run(model_dir)["tasks"][0]
    assert chief["exit_codes"] == [0] and chief["restarts"] == 0  # the same process: a new session only
    assert len(chief["attempts"][0]["sessions"]) == 2
    assert checkpoint_steps(model_dir)[-1] == 50


def test_a_worker_re_creating_its_session_when_the_chief_ends_the_run_is_dismissed(runner, tmp_path):
    """Seen on Ray after a host was cut off: a worker whose new sessions kept failing until the chief's
    final save was waited for until --worker_exit_secs, then given up on, though it had nothing to do."""
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.lost_session",
                        "--train_steps", "300", "--worker_exit_secs", "120",
                        # The worker registered with its first session: the chief waits for it 5 s, not 300.
                        "--chief_flags=--wait_for_workers_secs=5")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    output = launch.stdout + launch.stderr
    assert "worker:0 is not needed: training ended while it was re-creating its session; stopping it" in output, \
        output[-3000:]
    assert "gave up waiting" not in output and "[launcher] hang:" not in output, output[-3000:]
    log = (model_dir / "logs" / "worker-0.log").read_text()
    assert "session creation interrupted in _LoseTheSessionForGood (CancelledError)" in log, log[-3000:]
    worker = [t for t in last_run(model_dir)["tasks"] if t["job"] == "worker"][0]
    assert worker["exit_codes"] == [143] and len(worker["attempts"][0]["sessions"]) == 1
    assert checkpoint_steps(model_dir)[-1] == 300
