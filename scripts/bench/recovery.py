"""The recovery benchmark: a task SIGKILLed mid-training on local2, and how fast and how far back the
training resumes.

The run checkpoints every RECOVERY_SAVE_STEPS steps and logs "step = N" every RECOVERY_LOG_STEPS; once a
checkpoint at RECOVERY_KILL_AFTER_SAVED or later exists the victim is killed, and once it has recovered
(the logs show a step after the kill) the launcher gets SIGTERM, so that it writes run.json, whose figures
recovery_figures reads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Callable, Optional, Sequence

import psutil

from bench.floor import run_floor
from bench.launcher_process import TrialDir, launcher_argv, log_tail, running_launcher, trial_dir
from bench.processes import stop_launcher
from bench.task_processes import task_name
from bench.recovery_figures import RecoveryResult, recovery_result
from bench.task_logs import RESTORE_LINE, absl_time, first_step_line, log_steps, read_log, timed_steps
from bench.trials import BenchmarkError, announce, attempt, read_runs
from launcher.cluster import checkpoint_names
from launcher.launch import run_record, task_output
from launcher.cluster.spec import CHIEF, PS, TaskId

RECOVERY_SPEC = "local2"
RECOVERY_MODEL = "launcher.models.mlp"
RECOVERY_VICTIMS = ("chief:0", "worker:0", "ps:0")
RECOVERY_TRAIN_STEPS = 1_000_000  # never reached: the run is ended by SIGTERM
RECOVERY_SAVE_STEPS = 50
RECOVERY_LOG_STEPS = 10
RECOVERY_KILL_AFTER_SAVED = 100  # kill once a checkpoint at this step or later exists
RECOVERY_WAIT_SECS = 120.0  # kill to recovered, at most
RECOVERY_SETTLE_SECS = 2.0  # recovered to SIGTERM
RECOVERY_POLL_SECS = 0.1
TRAINERS = ("chief:0", "worker:0")  # the tasks of local2 that log steps
CHIEF_0 = CHIEF + ":0"


def _recovered_text(victim: str, logs: dict[str, str], offsets: dict[str, int]) -> str:
    """What the logs hold after the kill from the point where recovery shows, or "" when it does not yet:
    for a chief or worker, its log from its next attempt's header; for a ps, the chief's log from its
    first session restore after the kill."""
    if victim.split(":")[0] == PS:
        text, _ = read_log(logs[CHIEF_0], offsets[CHIEF_0])
        match = RESTORE_LINE.search(text)
        return text[match.start():] if match else ""
    text, _ = read_log(logs[victim], offsets[victim])
    start = text.find(f"=== {victim} attempt ")
    return text[start:] if start >= 0 else ""


def _task_process(launcher_pid: int, key: str) -> psutil.Process:
    """The launcher's live task process `key` ("ps:0"), found by the TF_CONFIG of its environment."""
    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and task_name(child) == key:
                return child
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    raise BenchmarkError(f"recovery {key}: no process of {key} under the launcher (pid {launcher_pid})")


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen, timeout_secs: float) -> str:
    """"ok" once `condition()` holds; "exited" if the launcher ends first; "timeout" after `timeout_secs`."""
    deadline = time.monotonic() + timeout_secs
    while True:
        if condition():
            return "ok"
        if proc.poll() is not None:
            return "exited"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(RECOVERY_POLL_SECS)


def _keep_logs(trial: TrialDir, keep_dir: str) -> None:
    """The launcher's log, the tasks' logs and run.json of a trial, copied to `keep_dir`."""
    os.makedirs(keep_dir, exist_ok=True)
    for source in (trial.log_path, os.path.join(trial.model_dir, "logs"), run_record.path(trial.model_dir)):
        target = os.path.join(keep_dir, os.path.basename(source))
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif os.path.exists(source):
            shutil.copy(source, target)


def run_recovery(victim: str, timeout_secs: float, keep_dir: Optional[str] = None,
                 extra: Sequence[str] = (), model: str = RECOVERY_MODEL) -> RecoveryResult:
    """One local2 run of `model` (the MLP by default) whose task `victim` is SIGKILLed mid-training; the
    model directory is deleted afterwards (its logs and run.json copied to `keep_dir` first, when given).
    `extra`: further launcher options (--nowarm_starts)."""
    with trial_dir("launcher-benchmark-recovery-") as trial:
        argv = launcher_argv(RECOVERY_SPEC, model, trial.model_dir, RECOVERY_TRAIN_STEPS,
                             f"--chief_flags=--save_checkpoint_steps={RECOVERY_SAVE_STEPS} "
                             f"--log_step_count_steps={RECOVERY_LOG_STEPS}",
                             f"--worker_flags=--log_step_count_steps={RECOVERY_LOG_STEPS}", *extra)
        try:
            with running_launcher(argv, trial.log_path) as proc:
                return _kill_and_recover(victim, proc, trial, timeout_secs)
        finally:
            if keep_dir is not None:
                _keep_logs(trial, keep_dir)


def _kill_and_recover(victim: str, proc: subprocess.Popen, trial: TrialDir, timeout_secs: float) -> RecoveryResult:
    """The trial with its launcher running: wait for a checkpoint, kill, wait for recovery, SIGTERM, figures."""
    model_dir, log_path = trial.model_dir, trial.log_path
    logs = {key: task_output.log_path(model_dir, TaskId(key.split(":")[0], int(key.split(":")[1])))
            for key in {*TRAINERS, victim}}
    waited = _wait_until(lambda: (checkpoint_names.newest_step(model_dir) or -1) >= RECOVERY_KILL_AFTER_SAVED,
                         proc, timeout_secs)
    if waited != "ok":
        raise BenchmarkError(f"recovery {victim}: no checkpoint at step {RECOVERY_KILL_AFTER_SAVED} ("
                             f"{'launcher exited ' + str(proc.returncode) if waited == 'exited' else waited});"
                             f" log:\n{log_tail(log_path)}")
    target = _task_process(proc.pid, victim)
    # The moment of the kill: what the logs show, and what is saved, just before it.
    offsets, logged_steps = {}, []
    for key, path in logs.items():
        text, offsets[key] = read_log(path)
        if key in TRAINERS:
            logged_steps += log_steps(text)
    step_at_kill = max(logged_steps, default=None)
    last_saved = checkpoint_names.newest_step(model_dir)
    target.send_signal(signal.SIGKILL)
    kill_time = time.time()
    waited = _wait_until(lambda: first_step_line(_recovered_text(victim, logs, offsets)) is not None,
                         proc, RECOVERY_WAIT_SECS)
    notes = []
    if waited == "ok":
        time.sleep(RECOVERY_SETTLE_SECS)
    elif waited == "timeout":
        notes.append(f"no step logged by the recovered {'chief' if victim.startswith(PS) else victim} "
                     f"within {RECOVERY_WAIT_SECS:.0f} s of the kill")
    else:
        notes.append(f"the launcher exited {proc.returncode} by itself after the kill; its log ends:\n"
                     f"{log_tail(log_path, 8)}")
    stop_launcher(proc)  # SIGTERM: the chief saves, the launcher writes run.json and exits 143
    if proc.returncode != 143 and waited != "exited":
        notes.append(f"launcher exit code {proc.returncode} after SIGTERM, not 143; its log ends:\n"
                     f"{log_tail(log_path, 8)}")
    runs = read_runs(model_dir)
    if not runs:
        raise BenchmarkError(f"recovery {victim}: no run.json after the launcher exited {proc.returncode}; "
                             f"log:\n{log_tail(log_path)}")
    year = time.localtime(kill_time).tm_year
    log_line = first_step_line(_recovered_text(victim, logs, offsets))
    log_time = absl_time(log_line, year) if log_line else None
    restore = RESTORE_LINE.search(read_log(logs[CHIEF_0], offsets[CHIEF_0])[0])
    restored = checkpoint_names.step_of(restore.group(1)) if restore else -1
    steps = [pair for key in TRAINERS for pair in timed_steps(read_log(logs[key])[0], year)]
    return recovery_result(victim, runs[-1], proc.returncode, kill_time, step_at_kill, last_saved,
                           waited == "ok", None if log_time is None else log_time - kill_time,
                           None if restored < 0 else restored, steps, notes)


def run_recoveries(victims: Sequence[str], repeat: int, timeout_secs: float, errors: list[str],
                   keep_logs: Optional[str] = None, model: str = RECOVERY_MODEL) -> list[RecoveryResult]:
    """`repeat` trials of each victim, each followed by a floor trial; failed trials go to `errors`."""
    results = []
    for trial_number in range(1, repeat + 1):
        for victim in victims:
            announce(f"[{trial_number}/{repeat}] recovery {RECOVERY_SPEC} {model}, kill {victim}")
            keep_dir = (os.path.join(keep_logs, f"{victim.replace(':', '-')}-{trial_number}") if keep_logs
                        else None)
            result = attempt(lambda: run_recovery(victim, timeout_secs, keep_dir, model=model), errors)
            if result is None:
                continue
            # The floor beside it, under the same load, with the trial's processes gone.
            floor = attempt(lambda: run_floor("local1", timeout_secs), errors)
            result.floor_secs = floor.ready_secs if floor else None
            results.append(result)
    return results
