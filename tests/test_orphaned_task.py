"""A launcher killed with SIGKILL: its tasks end as preempted ones do. The chief saves a checkpoint at the
step it reached, every task exits, and each task's own log says why it stopped."""

from __future__ import annotations

import re

from conftest import checkpoint_steps, logged_step, wait_for


def test_sigkilled_launcher_loses_no_training(runner, tmp_path):
    model_dir = tmp_path / "model"
    # Default checkpoint settings (every 60 s): only the end of the orphaned chief can save step 800.
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "1000000", "--chief_flags=--step_sleep_secs=0.005",
                          "--worker_flags=--step_sleep_secs=0.005")
    chief_log = model_dir / "logs" / "chief-0.log"
    wait_for(lambda: logged_step(chief_log) >= 800, timeout=240, what="the chief's step 800")
    launch.proc.kill()  # the launcher alone, not its tasks
    launch.proc.wait()
    reached = logged_step(chief_log)
    saved = wait_for(lambda: [s for s in checkpoint_steps(model_dir) if s >= reached], timeout=60,
                     what=f"a checkpoint at step {reached} or later")
    assert saved[-1] >= 800
    wait_for(lambda: not runner.leftovers(), timeout=60, what="every task to exit")
    pid = launch.proc.pid
    for name in ("chief-0", "worker-0", "ps-0"):
        log = (model_dir / "logs" / f"{name}.log").read_text()
        assert re.search(rf"the launcher \(pid {pid}\) is gone: stopping as if preempted", log), (name, log[-2000:])
    chief = chief_log.read_text()
    after = chief[chief.index(f"(pid {pid}) is gone"):]
    assert f"Saving checkpoints for {saved[-1]}" in after  # the save was the orphan's own, after the kill
    assert "Traceback" not in after and "BrokenPipeError" not in after
