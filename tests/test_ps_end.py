"""A ps ends by itself, exit 0, once the chief has saved the final checkpoint: the launcher need not stop it,
and neither does any other scheduler (the TF_CONFIG commands, a TFJob)."""

from __future__ import annotations

from conftest import checkpoint_steps, last_run


def test_ps_exits_0_by_itself_under_the_launcher(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local4", "--model_dir", str(model_dir), "--train_steps", "60",
                        timeout=300)
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    assert checkpoint_steps(model_dir)[-1] == 60, launch.stdout[-3000:]
    record = last_run(model_dir)
    ps = [t for t in record["tasks"] if t["job"] == "ps"]
    assert len(ps) == 2
    for task in ps:
        # Stopped by the launcher it would show 143 (SIGTERM) or a kill; 0 means it ended by itself.
        assert [a["exit_code"] for a in task["attempts"]] == [0], task
        assert "the chief has saved the final checkpoint" in (model_dir / "logs" / f"ps-{task['index']}.log").read_text()
    # Not before the final checkpoint: the ps held the variables until the chief's last save was written.
    final_save = (model_dir / "model.ckpt-60.index").stat().st_mtime
    assert min(t["attempts"][0]["ended"] for t in ps) >= final_save, (final_save, ps)


def test_a_ps_whose_chief_never_comes_gives_up_in_bounded_time(tmp_path):
    """Run by hand (TF_CONFIG, no launcher): nothing listens at the chief's address, so the ps ends, exit 1."""
    import json
    import os
    import subprocess
    import sys

    import portpicker

    from conftest import REPO

    ps_port, chief_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    tf_config = {"cluster": {"chief": [f"localhost:{chief_port}"], "ps": [f"localhost:{ps_port}"]},
                 "task": {"type": "ps", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "launcher.task", f"--model_dir={tmp_path}", "--ps_orphan_secs=3"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out[-2000:]
    assert "has not accepted connections for 3 s" in out


# --- the supervisor's side, on the stand-in task program (tests/bin/task_stub.py) -----------------------------

from test_supervisor import LOCAL2, Run, stop  # noqa: E402,F401  (stop: the fixture)

from launcher.cluster import exit_codes  # noqa: E402
from launcher.launch.task_state import Phase  # noqa: E402


def test_a_ps_that_exits_0_as_the_chief_finishes_is_done(tmp_path, stop):
    # The ps ends first (released by the chief), the chief moments later: the run succeeded, nothing failed.
    run = Run(tmp_path, stop, LOCAL2, {"chief:0": [{"exit": 0, "secs": 0.8}], "worker:0": [{"exit": 0, "secs": 0.2}],
                                      "ps:0": [{"exit": 0, "secs": 0.4}]})
    assert run.run().exit_code == exit_codes.OK
    assert run.first("ps:0", "exit 0") < run.first("chief:0", "exit 0")
    assert {s.task.name: s.phase for s in run.supervisor.states.values()} == {
        "chief:0": Phase.DONE, "worker:0": Phase.DONE, "ps:0": Phase.DONE}
    assert not [e for _, e, _ in run.events("ps:0") if e == "sigterm"]


def test_a_released_ps_is_started_again_for_a_restarted_chief(tmp_path, stop):
    # The chief released the ps, then was preempted before its own exit 0: the new chief needs a ps.
    run = Run(tmp_path, stop, LOCAL2, {"chief:0": [{"exit": 143, "secs": 1.0}, {"exit": 0, "secs": 0.5}],
                                      "worker:0": [{"exit": 0, "secs": 0.2}],
                                      "ps:0": [{"exit": 0, "secs": 0.3}, {"serve": True}]})
    assert run.run().exit_code == exit_codes.OK, run.console.getvalue()
    started = {task: [a["started"] for a in run.record(task)["attempts"]] for task in ("chief:0", "ps:0")}
    assert len(started["ps:0"]) == 2 and len(started["chief:0"]) == 2
    assert started["ps:0"][1] <= started["chief:0"][1]  # started again before the chief that needs it
    assert run.record("ps:0")["restarts"] == 1
