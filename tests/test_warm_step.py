"""A warm step (`python -m launcher.task.warm.step`): the process a Slurm job step runs for a task forked from
its node's warm process. Here without Slurm, as the step's process on this machine: the stand-in signals
reach the task as the signals they stand for, Slurm's own stop signals to the step do not, the step ends as
its task did, and without a warm process the task starts cold under it. (tests/test_slurm.py runs warm
steps on a real Slurm cluster.)"""

import signal
import subprocess
import sys
import threading

import portpicker
import psutil
import pytest

from conftest import checkpoint_steps, wait_for
from launcher.cluster import exit_codes, task_env, tf_config, warm_protocol
from launcher.cluster.spec import TaskId
from launcher.launch.backends.warm import WarmOptions, WarmProcess


def _chief(runner, model_dir) -> tuple[list[str], dict[str, str]]:
    model_dir.mkdir()  # as the launcher makes it
    argv = [sys.executable, "-m", "launcher.task", "--model=models.probe", f"--model_dir={model_dir}",
            "--train_steps=100000", "--step_sleep_secs=0.05", "--save_checkpoint_secs=3600"]
    port = portpicker.pick_unused_port()
    env = {**runner.env(), "PYTHONUNBUFFERED": "1", "TF_USE_LEGACY_KERAS": "1",
           tf_config.ENV_VAR: tf_config.build({"chief": [f"localhost:{port}"]}, TaskId("chief", 0))}
    return argv, env


class Step:
    """A warm step started as Slurm would start it (its own session), its output collected."""

    def __init__(self, socket_path: str, argv: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(warm_protocol.step_command(sys.executable, socket_path, argv), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def stand_in(self, signum: int) -> None:
        self.proc.send_signal(warm_protocol.step_signal(signum))

    def task(self) -> psutil.Process:
        """The task process: the one whose TF_CONFIG is the chief's, below the step or its warm process."""
        def found():
            for proc in psutil.process_iter():
                try:
                    env = proc.environ()
                    if proc.cmdline()[1:3] == ["-m", "launcher.task"] and str(self.proc.pid) in (
                            env.get(task_env.LAUNCHER_PID), env.get(task_env.PARENT_PID)):
                        return proc  # forked: it names the step as its launcher; cold: as its parent
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, IndexError):
                    continue
            return None
        return wait_for(found, timeout=120, what="the step's task process")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.stand_in(signal.SIGKILL)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_a_warm_step_passes_stand_ins_on_ignores_slurm_s_stop_and_ends_as_its_task(runner, tmp_path):
    model_dir = tmp_path / "model"
    argv, env = _chief(runner, model_dir)
    warm = WarmProcess(WarmOptions("models.probe", env, base=runner.warm_base))
    step = None
    try:
        assert warm.wait_ready() is None
        step = Step(warm.socket_path, argv, env)
        task = step.task()
        assert task.ppid() == warm.pid  # forked from the warm process: the step only stands for it
        wait_for(lambda: any("step = " in line for line in step.lines), timeout=120,
                 what="the chief's first step")

        step.stand_in(signal.SIGSTOP)
        wait_for(lambda: task.status() == psutil.STATUS_STOPPED, timeout=30, what="the task stopped")
        step.stand_in(signal.SIGCONT)
        wait_for(lambda: task.status() != psutil.STATUS_STOPPED, timeout=30, what="the task going on")

        # What Slurm sends every process of the step when the whole job is signalled reaches the task
        # through its warm step (in the warm process's); the standing-in step takes none of it.
        step.proc.send_signal(signal.SIGTERM)
        step.proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            step.proc.wait(2)
        assert task.is_running() and task.status() != psutil.STATUS_ZOMBIE

        step.stand_in(signal.SIGTERM)  # the launcher's stop: the chief saves and ends as preempted
        assert step.proc.wait(120) == exit_codes.PREEMPTED, "".join(step.lines[-30:])
        assert checkpoint_steps(model_dir)[-1] > 0
        assert not psutil.pid_exists(task.pid) or task.status() == psutil.STATUS_ZOMBIE
    finally:
        if step is not None:
            step.stop()
        warm.close()


def test_without_its_warm_process_a_warm_step_starts_the_task_cold_under_itself(runner, tmp_path):
    model_dir = tmp_path / "model"
    argv, env = _chief(runner, model_dir)
    step = Step(str(tmp_path / "nobody-listens" / "socket"), argv, env)
    try:
        task = step.task()
        assert task.ppid() == step.proc.pid
        assert any("[launcher] chief:0 starts cold: its node's warm process does not answer" in line
                   for line in step.lines), step.lines[:5]
        wait_for(lambda: any("step = " in line for line in step.lines), timeout=120,
                 what="the chief's first step")
        step.stand_in(signal.SIGKILL)  # passed on as SIGKILL, and the step ends as killed by it
        assert step.proc.wait(60) == -signal.SIGKILL
        wait_for(lambda: not psutil.pid_exists(task.pid), timeout=10, what="the task's end")
    finally:
        step.stop()
