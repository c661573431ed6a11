"""Warm starts against cold ones, alternated in one run (issue 14's targets):

- start-up: local4 (linear), launch to every chief's and worker's first step (run.json), cold, warm, and
  warm with a warm base running (its warm process forked from a base that imported TensorFlow before the
  launch, as a machine's base does), against one cold process that imports TensorFlow, starts a Server and
  runs one step (the yardstick);
- memory: total proportional set size (PSS: shared pages split among their users) of local4's task
  processes while all train, cold and warm; warm also with its warm process, which holds what they share;
- steady steps/s of local4 (the chief's global_step/sec scalars, the first left out), cold and warm;
- recovery (local2, MLP): SIGKILL to the restarted worker's and chief's first step (run.json attempts), and
  for a killed ps to the chief's first session after it (a step follows at once), cold and warm.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

import psutil

from bench.launcher_process import launcher_argv, log_tail, running_launcher, trial_dir
from bench.launcher_trial import read_step_rates
from bench.processes import MARKER, child_env
from bench.recovery import run_recovery
from bench.task_logs import read_log
from bench.task_processes import task_name
from bench.trials import BenchmarkError, announce, attempt, read_runs
from bench.warm_base import WarmBase
from launcher.cluster import warm_protocol
from launcher.launch import task_output
from launcher.cluster.spec import CHIEF, WORKER, TaskId

MODES = {"cold": ["--nowarm_starts"], "warm": ["--warm_starts"]}
BASE = "base"  # start-up only: its restarts are a warm run's (they fork from the run's warm process)
STARTUP_SPEC = "local4"
STARTUP_MODEL = "launcher.models.linear"
STARTUP_STEPS = 3000
VICTIMS = ("worker:0", "chief:0", "ps:0")

# One cold process: TensorFlow's import, a Server, one training step, as a task does before its first step.
ONE_PROCESS = """\
import sys, time
launched = float(sys.argv[1])
import launcher.task  # the task environment (TF_USE_LEGACY_KERAS)
import tensorflow as tf
tf.compat.v1.disable_eager_execution()  # graph mode, as the task program's training
from launcher import model_api
import portpicker
server = tf.distribute.Server({"chief": [f"localhost:{portpicker.pick_unused_port()}"]}, job_name="chief",
                              task_index=0, start=True)
build = model_api.load("launcher.models.linear")
from absl import flags
flags.FLAGS(["one_process"])  # the model's flags, at their defaults
model = build("train")
step = tf.compat.v1.train.get_or_create_global_step()
train = model.optimizer.minimize(model.loss, global_step=step)
with tf.compat.v1.train.MonitoredSession(tf.compat.v1.train.ChiefSessionCreator(master=server.target)) as s:
    s.run(train)
print(time.time() - launched, flush=True)
"""


@dataclasses.dataclass
class Startup:
    mode: str
    first_step_max_secs: Optional[float]
    pss_tasks_mb: Optional[float]
    pss_warm_mb: Optional[float]  # the warm process itself
    steps_per_sec: Optional[float]
    one_process_secs: Optional[float] = None  # the cold process measured beside it


def one_cold_process(timeout_secs: float) -> float:
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", ONE_PROCESS, str(launched)], capture_output=True, text=True,
                         env=child_env(), timeout=timeout_secs)
    if out.returncode != 0:
        raise BenchmarkError(f"one cold process: exit code {out.returncode}: {out.stderr[-2000:]}")
    return round(float(out.stdout.strip().splitlines()[-1]), 3)


def _pss_mb(procs: list[psutil.Process]) -> Optional[float]:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, AttributeError):
            return None
    return round(total / 2 ** 20, 1)


def _all_stepping(model_dir: str, trainers: list[str]) -> bool:
    for name in trainers:
        job, index = name.split(":")
        text, _ = read_log(task_output.log_path(model_dir, TaskId(job, int(index))))
        if "step = " not in text:
            return False
    return True


def startup_trial(mode: str, timeout_secs: float, base: Optional[WarmBase] = None) -> Startup:
    with trial_dir(f"launcher-benchmark-{mode}-") as trial:
        options = [f"--warm_base={base.socket}"] if mode == BASE else MODES[mode]
        argv = launcher_argv(STARTUP_SPEC, STARTUP_MODEL, trial.model_dir, STARTUP_STEPS, *options)
        with running_launcher(argv, trial.log_path) as proc:
            trainers = [f"{CHIEF}:0", *(f"{WORKER}:{i}" for i in range(3))]
            deadline = time.monotonic() + timeout_secs
            while not _all_stepping(trial.model_dir, trainers) and proc.poll() is None:
                if time.monotonic() > deadline:
                    raise BenchmarkError(f"{mode} {STARTUP_SPEC}: no step of every trainer; "
                                         f"log:\n{log_tail(trial.log_path)}")
                time.sleep(0.1)
            time.sleep(1.0)  # all are training: their memory is what a run holds
            below = psutil.Process(proc.pid).children(recursive=True)
            if base is not None:
                below += base.forks_for(proc.pid)
            tasks = [p for p in below if task_name(p)]
            warm = [p for p in below if not task_name(p) and _is_warm(p)]
            pss_tasks, pss_warm = _pss_mb(tasks), _pss_mb(warm) if warm else None
            from_base = base is None or any(_parent_pid(p) == base.proc.pid for p in warm)
            code = proc.wait(timeout_secs)
        if code != 0:
            raise BenchmarkError(f"{mode} {STARTUP_SPEC}: exit code {code}; log:\n{log_tail(trial.log_path)}")
        if not from_base:
            raise BenchmarkError(f"{mode} {STARTUP_SPEC}: the run's warm process was not the base's fork; log:\n"
                                 f"{log_tail(trial.log_path)}")
        run = read_runs(trial.model_dir)[-1]
        firsts = [t["first_step_secs"] for t in run["tasks"] if t["job"] in (CHIEF, WORKER)]
        rates = read_step_rates(trial.model_dir)
        rates = rates[1:] if len(rates) >= 3 else rates
        return Startup(mode, None if None in firsts else max(firsts), pss_tasks, pss_warm,
                       round(statistics.median(rates), 1) if rates else None)


def _parent_pid(proc: psutil.Process) -> Optional[int]:
    try:
        return proc.ppid()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _is_warm(proc: psutil.Process) -> bool:
    try:
        return warm_protocol.MODULE in proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def run_warm_comparison(repeat: int, timeout_secs: float, errors: list[str], recovery_model: str) -> dict:
    results: dict = {"one_process": [], "startup": [], "recovery": []}
    with tempfile.TemporaryDirectory(prefix="launcher-benchmark-base-") as directory:
        # Started before the trials of mode "base" (not timed: a machine's base is up before the runs it
        # serves), stopped by pid after them. Not marked as the trials' processes are: each trial's clean-up
        # kills whatever carries the mark, and took the base along after the first trial (every later "base"
        # trial then imported TensorFlow in its own warm process, unseen). The runs' warm processes it forks
        # carry their launcher's environment, mark included.
        env = child_env()
        env.pop(MARKER)
        base = WarmBase(directory, env, timeout_secs)
        try:
            _alternate(repeat, timeout_secs, errors, recovery_model, results, base)
        finally:
            base.stop()
    return results


def _alternate(repeat: int, timeout_secs: float, errors: list[str], recovery_model: str, results: dict,
               base: WarmBase) -> None:
    for i in range(repeat):
        order = ("cold", "warm") if i % 2 == 0 else ("warm", "cold")
        announce(f"[{i + 1}/{repeat}] one cold process (import, Server, one step)")
        secs = attempt(lambda: one_cold_process(timeout_secs), errors)
        if secs is not None:
            results["one_process"].append(secs)
        for mode in (*order, BASE) if i % 2 == 0 else (BASE, *order):
            announce(f"[{i + 1}/{repeat}] {STARTUP_SPEC} {mode}")
            found = attempt(lambda: startup_trial(mode, timeout_secs, base if mode == BASE else None), errors)
            if found is not None:
                found.one_process_secs = secs
                results["startup"].append(found)
        for victim in VICTIMS:
            for mode in order:
                announce(f"[{i + 1}/{repeat}] kill {victim}, {mode}")
                found = attempt(lambda: run_recovery(victim, timeout_secs, extra=MODES[mode], model=recovery_model),
                                errors)
                if found is not None:
                    results["recovery"].append((mode, found))


def _median(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def warm_report(results: dict) -> str:
    one = _median(results["one_process"])
    lines = [f"Warm vs cold (medians; one cold process: import, Server, one step: {one} s; "
             f"trials: {', '.join(str(v) for v in results['one_process'])})", ""]
    lines.append(f"{'':10} {'local4 first step s':>20} {'ratio':>7} {'PSS tasks MB':>13} {'+warm MB':>9} "
                 f"{'steps/s':>8}")
    for mode in (*MODES, BASE):
        runs = [r for r in results["startup"] if r.mode == mode]
        ratios = [r.first_step_max_secs / r.one_process_secs for r in runs
                  if r.first_step_max_secs and r.one_process_secs]
        warm = _median([r.pss_warm_mb for r in runs])
        tasks = _median([r.pss_tasks_mb for r in runs])
        lines.append(f"{mode:10} {str(_median([r.first_step_max_secs for r in runs])):>20} "
                     f"{str(_median(ratios)):>7} {str(tasks):>13} "
                     f"{'-' if warm is None else str(round(tasks + warm, 1)):>9} "
                     f"{str(_median([r.steps_per_sec for r in runs])):>8}")
        lines.append(f"{'':10} trials: " + "; ".join(
            f"{r.first_step_max_secs} s, {r.pss_tasks_mb} MB, {r.steps_per_sec}/s" for r in runs))
    lines += ["", f"{'kill':10} {'cold s':>8} {'warm s':>8}   (to the victim's next first step; ps: to the "
                  "chief's next session)"]
    for victim in VICTIMS:
        cells = {mode: _median([r.recovery_secs for m, r in results["recovery"] if m == mode and r.victim == victim])
                 for mode in MODES}
        lines.append(f"{victim:10} {str(cells['cold']):>8} {str(cells['warm']):>8}")
    return "\n".join(lines)
