"""One `launcher run` trial and its figures: first steps and step rate from run.json and the chief's
events, peak memory per task from sampling, the launcher's own start-up from process create times."""

from __future__ import annotations

import dataclasses
import glob
import os
import statistics
import subprocess
import time
from typing import Optional

from bench.launcher_process import launcher_argv, log_tail, running_launcher, trial_dir
from bench.netns import ray_argv, ray_env
from bench.processes import is_task, wait_for_strays
from bench.rss import RssSampler
from bench.trials import BenchmarkError, read_runs
from launcher.cluster.spec import CHIEF, WORKER

STEP_RATE_TAG = "global_step/sec"  # what tf.compat.v1.train.StepCounterHook writes
LEFTOVER_WAIT_SECS = 5.0  # after a Ray run ends: how long its processes get to go by themselves


@dataclasses.dataclass
class LauncherResult:
    spec: str
    model: str
    train_steps: int
    exit_code: int
    wall_secs: float
    prestart_secs: Optional[float]  # launcher process start -> its first task process start
    first_step_max_secs: Optional[float]
    first_step_min_secs: Optional[float]
    tasks_without_first_step: int
    global_steps: Optional[int]
    step_rates: list[float]
    rss_mb: dict[str, float]  # "chief:0", "worker:1", ..., "launcher"; "pid:N": others (Ray's)
    backend: str = "local"
    worker_wait_secs: Optional[float] = None  # chief's model ready -> the last worker's session ready
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def steps_per_sec(self) -> Optional[float]:
        """The median rate; without the first one (it includes the warm-up) when at least 2 others remain."""
        rates = self.step_rates[1:] if len(self.step_rates) >= 3 else self.step_rates
        return statistics.median(rates) if rates else None

    def rss_max(self, job: Optional[str] = None) -> Optional[float]:
        """Peak RSS over the tasks of `job`, or over every task when `job` is None."""
        values = [mb for key, mb in self.rss_mb.items() if is_task(key, job)]
        return max(values) if values else None


def read_step_rates(model_dir: str) -> list[float]:
    """Every "global_step/sec" scalar in the events files of `model_dir`, in file order."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # summary_iterator's deprecation notice
    rates = []
    for path in sorted(glob.glob(os.path.join(model_dir, "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                rates += [v.simple_value for v in event.summary.value if v.tag == STEP_RATE_TAG]
        except tf.errors.DataLossError:
            pass  # a truncated last record (a writer that was killed): keep what came before it
    return rates


def _prestart_secs(sampler: RssSampler) -> Optional[float]:
    """Launcher process start to its first task's start. Both are create times on the same clock (the
    difference of two is exact to a clock tick, unlike a difference against time.time())."""
    tasks = [created for key, created in sampler.created.items() if is_task(key)]
    if "launcher" not in sampler.created or not tasks:
        return None
    return round(min(tasks) - sampler.created["launcher"], 3)


def run_launcher(spec: str, model: str, train_steps: int, timeout_secs: float,
                 backend: str = "local") -> LauncherResult:
    """One `launcher run` into a fresh model directory, deleted afterwards.

    backend "ray": `--backend ray` in a loopback-only network namespace; the launcher starts a local Ray
    instance (its files under the trial's directory) and stops it at its end. Its processes carry the
    marker: any still there a few seconds after the launcher's exit is noted, then killed with the rest.
    """
    what = f"{spec} {model} {backend}"
    with trial_dir("launcher-benchmark-") as trial:
        argv, env = launcher_argv(spec, model, trial.model_dir, train_steps), None
        if backend == "ray":
            argv, env = ray_argv(argv), ray_env(trial.workdir)
        started = time.monotonic()
        with running_launcher(argv, trial.log_path, env) as proc:
            with RssSampler(proc.pid, "launcher") as sampler:
                try:
                    exit_code = proc.wait(timeout_secs)
                except subprocess.TimeoutExpired:
                    raise BenchmarkError(f"{what}: no end after {timeout_secs:.0f} s; log:\n"
                                         f"{log_tail(trial.log_path)}") from None
            wall_secs = time.monotonic() - started
            notes = []
            if backend == "ray":
                left = wait_for_strays(LEFTOVER_WAIT_SECS)
                if left:
                    notes.append(f"{len(left)} process(es) still running {LEFTOVER_WAIT_SECS:.0f} s after the "
                                 f"launcher exited, killed: {'; '.join(left)}")
            if exit_code != 0:
                raise BenchmarkError(f"{what}: launcher exit code {exit_code}; "
                                     f"{''.join(n + '; ' for n in notes)}log:\n{log_tail(trial.log_path)}")
            result = _launcher_result(spec, model, train_steps, exit_code, wall_secs, trial.model_dir, sampler,
                                      backend)
            result.notes += notes
            return result


def _worker_wait_secs(tasks: list[dict]) -> Optional[float]:
    """How long after the chief's first session the slowest worker had its own (run.json timelines):
    TensorFlow's stock worker polls the chief every 30 s, so this is where a slow poll would show."""
    def first_session(task: dict) -> Optional[float]:
        times = [s["time"] for a in task.get("attempts", []) for s in a["sessions"]]
        return min(times, default=None)

    chief = next((first_session(t) for t in tasks if t["job"] == CHIEF), None)
    workers = [first_session(t) for t in tasks if t["job"] == WORKER]
    if chief is None or not workers or None in workers:
        return None
    return round(max(workers) - chief, 3)


def _launcher_result(spec: str, model: str, train_steps: int, exit_code: int, wall_secs: float,
                     model_dir: str, sampler: RssSampler, backend: str) -> LauncherResult:
    run = read_runs(model_dir)[-1]
    trainers = [t for t in run["tasks"] if t["job"] in (CHIEF, WORKER)]
    first_steps = [t["first_step_secs"] for t in trainers if t["first_step_secs"] is not None]
    start_step, end_step = run.get("global_step_start") or 0, run.get("global_step_end")
    return LauncherResult(
        spec=spec, model=model, train_steps=train_steps, exit_code=exit_code, wall_secs=round(wall_secs, 3),
        prestart_secs=_prestart_secs(sampler),
        first_step_max_secs=max(first_steps, default=None), first_step_min_secs=min(first_steps, default=None),
        tasks_without_first_step=len(trainers) - len(first_steps),
        global_steps=None if end_step is None else end_step - start_step,
        step_rates=read_step_rates(model_dir), rss_mb={k: round(v, 1) for k, v in sampler.peak_mb.items()},
        backend=backend, worker_wait_secs=_worker_wait_secs(run["tasks"]))
