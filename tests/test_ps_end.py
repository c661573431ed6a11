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
