"""A ps ends by itself, exit 0, once the chief has saved the final checkpoint: the launcher need not stop it,
and neither does any other scheduler (the TF_CONFIG commands, a TFJob)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import portpicker
import pytest

from conftest import REPO, checkpoint_steps, last_run


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


def _ps_by_hand(tmp_path, chief_port: int, *flags: str) -> subprocess.Popen:
    """A ps run by hand (TF_CONFIG, no launcher), its chief at `chief_port`; output merged, as text."""
    tf_config = {"cluster": {"chief": [f"localhost:{chief_port}"], "ps": [f"localhost:{portpicker.pick_unused_port()}"]},
                 "task": {"type": "ps", "index": 0}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "launcher.task", f"--model_dir={tmp_path}", *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_a_ps_whose_chief_never_comes_gives_up_in_bounded_time(tmp_path):
    """Nothing listens at the chief's address, so the ps ends, exit 1."""
    proc = _ps_by_hand(tmp_path, portpicker.pick_unused_port(), "--ps_orphan_secs=3")
    out = _Output(proc).rest(proc, timeout=180)
    assert proc.returncode == 1, out[-2000:]
    assert "has not accepted connections for 3 s" in out


@contextlib.contextmanager
def _listening_chief():
    """Something that accepts connections where the chief would be: to a ps, a chief that is up."""
    with socket.create_server(("localhost", 0)) as server:
        yield server.getsockname()[1]


class _Output:
    """A process's output lines, read as they come (a thread), so that a wait for one is bounded."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout:.0f} s:\n" + self.text[-2000:]) from None
            if line is None:
                raise AssertionError(f"the process ended before a line with {text!r}:\n" + self.text[-2000:])
            self.lines.append(line)
            if text in line:
                return

    def rest(self, proc: subprocess.Popen, timeout: float) -> str:
        """Everything, once `proc` has ended (killed if it has not within `timeout`)."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass  # killed below; the caller's check of the exit code says so
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        while (line := self._queue.get(timeout=10)) is not None:
            self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


# The ps's own line once it waits for the chief's release: from then on a first stop signal is an orderly one.
SERVING = "serving until the chief releases it"


def test_a_stopped_ps_serves_on_while_its_chief_may_save(tmp_path):
    """Slurm's scancel signals every step at once: the chief saves at the step it reached, through the ps,
    which got its SIGTERM in the same instant. The ps serves on until the chief is gone, then exits 143."""
    with _listening_chief() as chief_port:
        proc = _ps_by_hand(tmp_path, chief_port, "--ps_orphan_secs=300")
        output = _Output(proc)
        try:
            output.until(SERVING)
            proc.send_signal(signal.SIGTERM)
            output.until("serving while the chief")
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=3)  # still serving: the chief is up
        except BaseException:
            output.rest(proc, timeout=0)
            raise
    # The chief is gone: the ps stops within a few polls.
    out = output.rest(proc, timeout=30)
    assert proc.returncode == 143, out[-2000:]
    assert "received SIGTERM: serving while the chief" in out and "the chief has ended: ps:0 stops" in out


def test_a_second_stop_signal_ends_a_serving_ps_at_once(tmp_path):
    with _listening_chief() as chief_port:
        proc = _ps_by_hand(tmp_path, chief_port, "--ps_orphan_secs=300")
        output = _Output(proc)
        try:
            output.until(SERVING)
            proc.send_signal(signal.SIGTERM)
            output.until("serving while the chief")
        except BaseException:
            output.rest(proc, timeout=0)
            raise
        proc.send_signal(signal.SIGTERM)
        out = output.rest(proc, timeout=30)
        assert proc.returncode == 143, out[-2000:]
        assert "the chief has ended" not in out  # it did not wait for the chief, which is still up


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
