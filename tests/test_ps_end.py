"""A ps ends by itself, exit 0, once the chief has saved the final checkpoint: the launcher need not stop it,
and neither does any other scheduler (the TF_CONFIG commands, a TFJob)."""

from __future__ import annotations

import contextlib
import json
import pathlib
import signal
import socket
import subprocess
import sys

import portpicker
import pytest

from conftest import checkpoint_steps, last_run, wait_for


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


def _ps_by_hand(runner, tmp_path: pathlib.Path, chief_port: int, *flags: str) -> tuple[subprocess.Popen, pathlib.Path]:
    """A ps run by hand (TF_CONFIG, no launcher), its chief at `chief_port`, its output in a file. Started with
    the runner's environment, so that the runner's cleanup finds it if a test fails."""
    tf_config = {"cluster": {"chief": [f"localhost:{chief_port}"], "ps": [f"localhost:{portpicker.pick_unused_port()}"]},
                 "task": {"type": "ps", "index": 0}}
    env = {**runner.env(), "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = tmp_path / "ps.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "launcher.task", f"--model_dir={tmp_path}", *flags],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def test_a_ps_whose_chief_never_comes_gives_up_in_bounded_time(runner, tmp_path):
    """Nothing listens at the chief's address, so the ps ends, exit 1."""
    proc, log = _ps_by_hand(runner, tmp_path, portpicker.pick_unused_port(), "--ps_orphan_secs=3")
    assert proc.wait(timeout=180) == 1, log.read_text()[-2000:]
    assert "has not accepted connections for 3 s" in log.read_text()


@contextlib.contextmanager
def _listening_chief():
    """Something that accepts connections where the chief would be: to a ps, a chief that is up."""
    with socket.create_server(("localhost", 0)) as server:
        yield server.getsockname()[1]


def _logged(proc: subprocess.Popen, log: pathlib.Path, text: str) -> None:
    wait_for(lambda: text in log.read_text() or proc.poll() is not None, what=repr(text))
    assert text in log.read_text(), log.read_text()[-2000:]


def _signalled_while_serving(runner, tmp_path: pathlib.Path, chief_port: int) -> tuple[subprocess.Popen, pathlib.Path]:
    """A ps that serves (its own line says so from the moment a first stop signal is an orderly one), then a
    SIGTERM, which it takes while its chief is up."""
    proc, log = _ps_by_hand(runner, tmp_path, chief_port, "--ps_orphan_secs=300")
    _logged(proc, log, "serving until the chief releases it")
    proc.send_signal(signal.SIGTERM)
    _logged(proc, log, "received SIGTERM: serving while the chief")
    return proc, log


def test_a_stopped_ps_serves_on_while_its_chief_may_save(runner, tmp_path):
    """Slurm's scancel signals every step at once: the chief saves at the step it reached, through the ps,
    which got its SIGTERM in the same instant. The ps serves on until the chief is gone, then exits 143."""
    with _listening_chief() as chief_port:
        proc, log = _signalled_while_serving(runner, tmp_path, chief_port)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=3)  # still serving: the chief is up
    # The chief is gone: the ps stops within a few polls.
    assert proc.wait(timeout=30) == 143, log.read_text()[-2000:]
    assert "the chief has ended: ps:0 stops" in log.read_text()


def test_a_second_stop_signal_ends_a_serving_ps_at_once(runner, tmp_path):
    with _listening_chief() as chief_port:
        proc, log = _signalled_while_serving(runner, tmp_path, chief_port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143, log.read_text()[-2000:]
        assert "the chief has ended" not in log.read_text()  # it did not wait for the chief, which is still up


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
