"""Faults: killed tasks are restarted and training goes on from what was saved; nothing saved is lost."""

import os
import re
import signal
import time

import pytest

from conftest import checkpoint_steps, last_run, logged_step, read_variables, wait_for
from launcher.launch.run import publish_cluster

# Slow steps give the test time to act mid-training; checkpoints every 20 steps.
SLOW = "--step_sleep_secs=0.01"


def _tasks(run):
    return {f"{t['job']}:{t['index']}": t for t in run["tasks"]}


def _start_slow(runner, model_dir, train_steps, *extra):
    return runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                        "--train_steps", str(train_steps),
                        f"--chief_flags={SLOW} --save_checkpoint_steps=20 --max_to_keep=3",
                        f"--worker_flags={SLOW}", "--ps_flags=--recovery_deadline_secs=60", *extra)


def _wait_for_checkpoint(model_dir, at_least=20):
    return wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= at_least],
                    what=f"a checkpoint at step {at_least} or later")[-1]


@pytest.mark.parametrize("victim", ["chief:0", "worker:0", "ps:0"])
def test_killed_task_is_restarted_and_training_reaches_the_target(runner, tmp_path, victim):
    model_dir = tmp_path / "model"
    launch = _start_slow(runner, model_dir, 300)
    saved = _wait_for_checkpoint(model_dir)
    killed_at = time.time()
    os.kill(launch.tasks()[victim].pid, signal.SIGKILL)
    assert launch.wait() == 0, launch.stderr
    run = last_run(model_dir)
    tasks = _tasks(run)
    assert {name: t["restarts"] for name, t in tasks.items()} == {
        name: int(name == victim) for name in ("chief:0", "worker:0", "ps:0")}
    assert tasks[victim]["exit_codes"][0] == -signal.SIGKILL
    assert run["global_step_end"] == 300 and checkpoint_steps(model_dir)[-1] == 300
    # Restarts count the checkpoints already on disk against --max_to_keep.
    assert len(checkpoint_steps(model_dir)) <= 3, checkpoint_steps(model_dir)
    # No step that was in a checkpoint is lost: every session after the kill started at or past it. There are
    # such sessions whoever the victim: a restarted chief or worker opens one, and a lost ps makes the chief
    # and the worker re-create theirs.
    after_kill = [(name, session["step"]) for name in ("chief:0", "worker:0")
                  for attempt in tasks[name]["attempts"] for session in attempt["sessions"]
                  if session["time"] > killed_at]
    assert after_kill, tasks
    assert all(step >= saved for _, step in after_kill), (saved, after_kill)
    if victim != "ps:0":
        assert victim in [name for name, _ in after_kill], after_kill
        assert tasks[victim]["steps"] > 0
    if victim == "chief:0":
        # The ps lived on with what the worker trained meanwhile: the new chief joins it, no rollback.
        assert "joining them instead of restoring" in (model_dir / "logs" / "chief-0.log").read_text()


def test_task_that_keeps_dying_exhausts_its_restarts(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start_slow(runner, model_dir, 100000, "--max_restarts", "1")
    _wait_for_checkpoint(model_dir)
    first = launch.tasks()["worker:0"]
    first.kill()
    # The process found is the one killed: a second lookup could miss it (it failed once under load).
    second = wait_for(lambda: (w := launch.tasks().get("worker:0")) is not None and w.pid != first.pid and w,
                      what="the worker's restart")
    second.kill()
    assert launch.wait() == 1, launch.stderr
    assert "worker:0 killed by SIGKILL" in launch.stderr
    run = last_run(model_dir)
    assert run["outcome"] == "failed" and _tasks(run)["worker:0"]["restarts"] == 1


def test_killed_launcher_leaves_no_task_running_nor_its_model_dir_locked(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = _start_slow(runner, model_dir, 100000)
    wait_for(lambda: len(launch.tasks()) == 3, what="three tasks")
    launch.proc.kill()  # the launcher alone, not its tasks: they must notice by themselves
    launch.proc.wait()
    wait_for(lambda: not runner.leftovers(), timeout=45, what="the tasks to exit")
    # The lock went with the launcher: a second one on the same directory runs (and resumes).
    target = max(checkpoint_steps(model_dir), default=0) + 10
    second = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", str(target))
    assert second.proc.returncode == 0, second.stderr
    assert last_run(model_dir)["global_step_end"] == target


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_save_a_checkpoint_and_stop_everything_with_their_own_code(runner, tmp_path, signum):
    model_dir = tmp_path / "model"
    # No periodic save within the test: a checkpoint past step 0 can only be the one saved on the signal.
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", f"--worker_flags={SLOW}",
                          f"--chief_flags={SLOW} --save_checkpoint_secs=3600 --log_step_count_steps=10")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 20, what="the chief's step 20")
    reached = logged_step(model_dir / "logs" / "chief-0.log")
    launch.proc.send_signal(signum)
    assert launch.wait(60) == 128 + signum, launch.stderr
    assert runner.leftovers() == []
    saved = checkpoint_steps(model_dir)[-1]
    assert saved >= reached, (saved, reached)
    run = last_run(model_dir)
    assert run["outcome"] == "interrupted" and run["global_step_end"] == saved
    # The chief stopped by itself on the launcher's stop request (SIGTERM), it was not killed.
    assert _tasks(run)["chief:0"]["exit_codes"] in ([143], [128 + signum])
    assert read_variables(model_dir)["global_step"] == saved


def _saving(model_dir) -> bool:
    return any("_temp" in entry.name for entry in os.scandir(model_dir))


def _stopped(process) -> bool:
    """Whether every thread of `process` is stopped. SIGSTOP takes effect as each thread next runs: until
    then a thread may go on, and finish the write under way."""
    try:
        return all(open(f"/proc/{process.pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()[0] == "T"
                   for tid in os.listdir(f"/proc/{process.pid}/task"))
    except OSError:
        return False


def _freeze_mid_write(chief, model_dir, timeout: float = 60) -> None:
    """Stop `chief` (SIGSTOP) while a save's `_temp` directory exists, seen again once every thread of it is
    stopped: a kill then lands in the middle of that write for certain. The directory lives for
    milliseconds: look often."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _saving(model_dir):
            chief.suspend()
            stop_by = time.monotonic() + 5
            while not _stopped(chief) and time.monotonic() < stop_by:
                time.sleep(0.001)
            if _stopped(chief) and _saving(model_dir):
                return
            chief.resume()
        time.sleep(0.001)
    pytest.fail(f"no save under way seen in {timeout}s")


def test_chief_killed_while_saving_every_step_always_restores(runner, tmp_path):
    """Saves every step, so kills land in the middle of writes; every restart must find a good checkpoint."""
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "400",
                          "--max_restarts", "3", "--chief_flags=--save_checkpoint_steps=1 --max_to_keep=2")
    for kill in range(3):
        chief = wait_for(lambda: launch.tasks().get("chief:0"), what="the chief")
        log = model_dir / "logs" / "chief-0.log"
        # Wait until this process is saving (a save every step), then kill it wherever it is.
        wait_for(lambda: log.exists() and log.read_text().count("Saving checkpoints for") >= 20 * (kill + 1),
                 what="the chief's saves")
        _freeze_mid_write(chief, model_dir)
        chief.kill()
        chief.wait()
        assert _saving(model_dir)  # the write it was in the middle of was never finished
    assert launch.wait() == 0, launch.stderr
    run = last_run(model_dir)
    chief = run["tasks"][0]
    assert chief["restarts"] == 3 and run["global_step_end"] == 400
    # Each restart resumed from a checkpoint: the global step never went back to 0.
    assert all(step > 0 for step in chief["session_steps"][1:]), chief["session_steps"]


def test_a_worker_told_it_was_started_anew_elsewhere_stops_at_once(runner, tmp_path):
    """The orphan of a moved worker (its host declared lost, then back) learns from the membership file that
    another process is the worker now, and stops within a second, mid-training (see Membership.replaced_by);
    here the file names an address no process has, so the launcher restarts the worker in place."""
    model_dir = tmp_path / "model"
    launch = _start_slow(runner, model_dir, 300)
    _wait_for_checkpoint(model_dir)

    def serving(task):
        return re.search(r"serving at grpc://(\S+)", (model_dir / "logs" / f"{task}.log").read_text()).group(1)

    publish_cluster(str(model_dir), {"chief": [serving("chief-0")], "ps": [serving("ps-0")], "worker": ["localhost:1"]})
    assert launch.wait() == 0, launch.stderr[-3000:]
    log = (model_dir / "logs" / "worker-0.log").read_text()
    assert "worker:0 was started anew at localhost:1 (.cluster.json): this process stops without saving" in log, \
        log[-3000:]
    worker = _tasks(last_run(model_dir))["worker:0"]
    assert worker["exit_codes"] == [143, 0] and worker["restarts"] == 1, worker
    assert checkpoint_steps(model_dir)[-1] == 300
