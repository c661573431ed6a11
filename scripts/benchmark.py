"""Benchmark of the launcher: start-up time, training throughput and memory, against plain TensorFlow.

For each cluster spec (default local1, local2, local4) and each model (default launcher.models.linear and
launcher.models.mlp) this script runs `python -m launcher run` into a fresh temporary model directory and
measures:

- first step: seconds from launch to every task's first training step, i.e. the max (and the min) over
  the chief and workers of `first_step_secs` in run.json. That clock starts when the launcher's CLI module
  is imported (launcher.cli._LAUNCHED, a moment after its interpreter starts), so it includes the launcher's
  own start-up, which is also shown on its own ("pre": launcher process start to its first task process
  start, from the processes' create times; with Ray, the start of Ray's local instance is part of it);
- steps/sec: the median of the chief's "global_step/sec" TensorBoard scalars (written by its
  StepCounterHook every --log_step_count_steps global steps, 100 by default; "-" if the run was too short);
- peak RSS: every process under the launcher is sampled with psutil every 0.2 s; a task is known by the
  --job_name/--task_index of its command line. Reported: the max over tasks, the max per role, and the
  launcher process itself.

Side by side, for the same model and number of steps:

- plain: one process of this script, with no cluster and no launcher, builds build("train"), a global step
  and optimizer.minimize(loss, global_step) in a MonitoredTrainingSession without checkpoints or
  summaries: seconds from process launch to its first step, steps/sec after a warm-up, and peak RSS;
- floor: N bare processes (N = tasks of the spec), each only importing TensorFlow and starting a
  tf.distribute.Server of a cluster of that size: seconds from launch until all N have printed "ready".
  No launcher can start its tasks faster than that.

Backends (--backends, default local): each spec and model gets one row per backend. "ray" runs
`launcher run --backend ray` without --ray_address, so the launcher starts (and stops) a local Ray instance,
inside a network namespace with only loopback (`unshare -n`, as tests/test_ray_backend.py does: Ray would
otherwise bind to the machine's routable address), with Ray's temporary directory in the trial's own
directory. Where `unshare -n` (root) or Ray is missing, Ray rows are skipped and the report says why.

With --repeat > 1 the table shows the median of the repeats; --out_json writes every raw figure.

Recovery (--recovery after that table, --recovery_only instead of it): a task SIGKILLed mid-training on
local2 with launcher.models.mlp, one trial per victim (chief:0, worker:0, ps:0) in a fresh model directory.
The run checkpoints every 50 steps and logs "step = N" every 10; once a checkpoint at step 100 or later
exists, the victim is killed, and once it has recovered (a restarted chief or worker logs a step; after a
ps kill, the chief logs a step in a session created after the kill) the launcher gets SIGTERM (it exits
143, preempted) and run.json is read:

- recovery s: kill to the next training step: the restarted victim's first step (run.json), or after a
  ps kill the chief's first session created after the kill (a session start is followed by a step at
  once); "log step s": the same from the first "step =" log line after the kill (a coarser, independent
  clock: the log hook writes every 10 steps of its process);
- respawn s: kill to the start of the victim's next process (how fast the launcher noticed and restarted);
- floor s: one bare process importing TensorFlow and starting a server (`run_floor` on local1), measured
  right after each trial: no restarted task can step sooner;
- step at kill (the highest "step = N" in the chief's and worker's logs), last saved (the newest
  checkpoint), restored from (the step the chief's first post-kill session started at), steps lost (step
  at kill - restored from; 0 when the chief kept its session), restarts per task and exit code.

Run it from the repository (it takes minutes: keep the machine otherwise idle for meaningful figures):

    python scripts/benchmark.py
    python scripts/benchmark.py --specs local1,local2 --models launcher.models.linear --train_steps 300
    python scripts/benchmark.py --repeat 3 --out_json /tmp/bench.json
    python scripts/benchmark.py --specs local2 --models launcher.models.linear --backends local,ray
    python scripts/benchmark.py --recovery_only [--victims ps:0]
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Optional, Sequence

import psutil

from launcher import checkpoint_names, model_api, ports, run_record, task_output
from launcher import spec as spec_lib
from launcher.spec import CHIEF, JOBS, PS, WORKER, TaskId

DEFAULT_SPECS = ("local1", "local2", "local4")
DEFAULT_MODELS = ("launcher.models.linear", "launcher.models.mlp")
DEFAULT_TRAIN_STEPS = {"launcher.models.linear": 2000, "launcher.models.mlp": 300}
FALLBACK_TRAIN_STEPS = 1000
SAMPLE_SECS = 0.2
STEP_RATE_TAG = "global_step/sec"  # what tf.compat.v1.train.StepCounterHook writes
LAUNCHER_STOP_SECS = 45.0  # after SIGTERM, the launcher's own grace (30 s) plus a margin
MARKER = "LAUNCHER_BENCHMARK_RUN"  # in every child's environment, to find strays at clean-up
BACKENDS = ("local", "ray")
# A loopback-only network namespace, as tests/test_ray_backend.py runs Ray: nothing leaves loopback.
NETNS = ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')
LEFTOVER_WAIT_SECS = 5.0  # after a Ray run ends: how long its processes get to go by themselves
RUN_ID = uuid.uuid4().hex
MB = 2 ** 20

# A floor process: nothing but the TensorFlow import and a server, as a task does before training.
FLOOR_PROGRAM = """\
import json, sys, time
import tensorflow as tf
tf.distribute.Server(tf.train.ClusterSpec(json.loads(sys.argv[1])), job_name=sys.argv[2],
                     task_index=int(sys.argv[3]), start=True)
print("ready", flush=True)
time.sleep(3600)
"""


class BenchmarkError(Exception):
    """A trial that did not produce its figures."""


# -- results --

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
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def steps_per_sec(self) -> Optional[float]:
        """The median rate; without the first one (it includes the warm-up) when at least 2 others remain."""
        rates = self.step_rates[1:] if len(self.step_rates) >= 3 else self.step_rates
        return statistics.median(rates) if rates else None

    def rss_max(self, job: Optional[str] = None) -> Optional[float]:
        """Peak RSS over the tasks of `job`, or over every task when `job` is None."""
        values = [mb for key, mb in self.rss_mb.items() if key.split(":")[0] in ((job,) if job else JOBS)]
        return max(values) if values else None


@dataclasses.dataclass
class PlainResult:
    model: str
    train_steps: int
    warmup_steps: int
    first_step_secs: float
    steps_per_sec: float
    rss_mb: float


@dataclasses.dataclass
class FloorResult:
    spec: str
    processes: int
    ready_secs: float


# -- processes --

def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env[MARKER] = RUN_ID
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # as the launcher sets it for its tasks
    return env


def start(argv: Sequence[str], env: Optional[dict[str, str]] = None, **popen_args) -> subprocess.Popen:
    """A child in a session of its own, so that it and what it spawns can be killed as a group."""
    return subprocess.Popen(list(argv), env=env or child_env(), stdin=subprocess.DEVNULL, start_new_session=True,
                            **popen_args)


def ray_unavailable() -> Optional[str]:
    """Why Ray trials cannot run here, or None when they can."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'ray[default]')"
    missing = [tool for tool in NETNS[:1] + ("ip",) if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found, and Ray trials run in a loopback-only network namespace"
    probe = subprocess.run([*NETNS, "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return f"`unshare -n` is not available here ({why[0]}; it needs root or user namespaces)"
    return None


def ray_env(workdir: str) -> dict[str, str]:
    """A Ray trial's environment: Ray's files in the trial's directory; a local instance, never another
    cluster named by RAY_ADDRESS; no usage report (it could not leave the namespace anyway)."""
    env = child_env()
    env.pop("RAY_ADDRESS", None)
    env["RAY_TMPDIR"] = workdir
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _marked_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER) == RUN_ID:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:100] or proc.name()}"
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return str(proc.pid)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_for_strays(timeout_secs: float) -> list[str]:
    """Waits up to `timeout_secs` for every process of this benchmark to end by itself; those left."""
    deadline = time.monotonic() + timeout_secs
    while True:
        left = [p for p in _marked_processes() if _alive(p)]
        if not left or time.monotonic() >= deadline:
            return [_describe(p) for p in left]
        time.sleep(0.2)


def kill_all(procs: Iterable[subprocess.Popen]) -> None:
    """SIGKILL the process groups of `procs`, then anything else this benchmark started (tasks that
    outlived their launcher, in sessions of their own; a Ray instance's processes)."""
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()
    for stray in _marked_processes():
        try:
            if os.getpgid(stray.pid) == stray.pid:
                os.killpg(stray.pid, signal.SIGKILL)
            else:
                stray.kill()
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    left = wait_for_strays(5.0)
    if left:
        print(f"WARNING: still running after SIGKILL: {'; '.join(left)}", file=sys.stderr, flush=True)


def stop_launcher(proc: subprocess.Popen) -> None:
    """A launcher still running (timeout, Ctrl-C): SIGTERM, so that it stops its tasks, then SIGKILL all."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(LAUNCHER_STOP_SECS)
        except subprocess.TimeoutExpired:
            pass
    kill_all([proc])


def _task_key(cmdline: Sequence[str]) -> Optional[str]:
    """"chief:0" from a task's `--job_name=chief --task_index=0`, else None."""
    values = dict(arg[2:].split("=", 1) for arg in cmdline if arg.startswith("--") and "=" in arg)
    if "job_name" not in values:
        return None
    return f"{values['job_name']}:{values.get('task_index', 0)}"


class RssSampler:
    """Samples, in a thread, the RSS of a process and all its descendants; keeps the peak per key.

    The root is keyed `root_name`; a task by its job and index; anything else by its pid.
    """

    def __init__(self, pid: int, root_name: str, every_secs: float = SAMPLE_SECS):
        self._root = psutil.Process(pid)
        self._root_name = root_name
        self._every_secs = every_secs
        self._keys: dict[psutil.Process, str] = {}
        self.created: dict[str, float] = {}  # key -> create time of its first process
        self.peak_mb: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self._every_secs)

    def _key(self, proc: psutil.Process) -> str:
        if proc not in self._keys:
            key = self._root_name if proc == self._root else _task_key(proc.cmdline()) or f"pid:{proc.pid}"
            self._keys[proc] = key
            self.created.setdefault(key, proc.create_time())
        return self._keys[proc]

    def sample(self) -> None:
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return
        for proc in procs:
            try:
                key, rss = self._key(proc), proc.memory_info().rss / MB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.peak_mb[key] = max(self.peak_mb.get(key, 0.0), rss)


# -- the launcher --

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


def _is_task(key: str) -> bool:
    return key.split(":")[0] in JOBS


def _prestart_secs(sampler: RssSampler) -> Optional[float]:
    """Launcher process start to its first task's start. Both are create times on the same clock (the
    difference of two is exact to a clock tick, unlike a difference against time.time())."""
    tasks = [created for key, created in sampler.created.items() if _is_task(key)]
    if "launcher" not in sampler.created or not tasks:
        return None
    return round(min(tasks) - sampler.created["launcher"], 3)


def _log_tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def run_launcher(spec: str, model: str, train_steps: int, timeout_secs: float,
                 backend: str = "local") -> LauncherResult:
    """One `launcher run` into a fresh model directory, deleted afterwards.

    backend "ray": `--backend ray` in a loopback-only network namespace; the launcher starts a local Ray
    instance (its files under the trial's directory) and stops it at its end. Its processes carry the
    marker: any still there a few seconds after the launcher's exit is noted, then killed with the rest.
    """
    workdir = tempfile.mkdtemp(prefix="launcher-benchmark-")
    model_dir, log_path = os.path.join(workdir, "model"), os.path.join(workdir, "launcher.log")
    argv = [sys.executable, "-m", "launcher", "run", f"--spec={spec}", f"--model_dir={model_dir}",
            f"--train_steps={train_steps}", f"--model={model}"]
    env = None
    if backend == "ray":
        argv, env = [*NETNS, *argv, "--backend=ray"], ray_env(workdir)
    what = f"{spec} {model} {backend}"
    proc = None
    try:
        with open(log_path, "w") as log:
            started = time.monotonic()
            proc = start(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        with RssSampler(proc.pid, "launcher") as sampler:
            try:
                exit_code = proc.wait(timeout_secs)
            except subprocess.TimeoutExpired:
                raise BenchmarkError(f"{what}: no end after {timeout_secs:.0f} s; log:\n"
                                     f"{_log_tail(log_path)}") from None
        wall_secs = time.monotonic() - started
        notes = []
        if backend == "ray":
            left = wait_for_strays(LEFTOVER_WAIT_SECS)
            if left:
                notes.append(f"{len(left)} process(es) still running {LEFTOVER_WAIT_SECS:.0f} s after the "
                             f"launcher exited, killed: {'; '.join(left)}")
        if exit_code != 0:
            raise BenchmarkError(f"{what}: launcher exit code {exit_code}; "
                                 f"{''.join(n + '; ' for n in notes)}log:\n{_log_tail(log_path)}")
        result = _launcher_result(spec, model, train_steps, exit_code, wall_secs, model_dir, sampler, backend)
        result.notes += notes
        return result
    finally:
        if proc is not None:
            stop_launcher(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def _launcher_result(spec: str, model: str, train_steps: int, exit_code: int, wall_secs: float,
                     model_dir: str, sampler: RssSampler, backend: str = "local") -> LauncherResult:
    run = run_record.read(model_dir)[-1]
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
        backend=backend)


# -- plain TensorFlow, one process --

def warmup_steps(train_steps: int) -> int:
    return max(1, min(100, train_steps // 5))


def plain_child(model: str, train_steps: int, launched_at: float) -> None:
    """The plain run itself (in a child process): prints its figures as one JSON line."""
    build = model_api.load(model)  # imports TensorFlow, and defines the model's flags
    import tensorflow as tf
    from absl import flags

    flags.FLAGS(["plain"])  # the model's flags at their defaults, as the launcher's tasks have them
    warmup = min(warmup_steps(train_steps), train_steps - 1)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        model_ = build(model_api.TRAIN)
        train_op = model_.optimizer.minimize(model_.loss, global_step=global_step)
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=None, save_checkpoint_secs=None, save_summaries_steps=None,
                save_summaries_secs=None, log_step_count_steps=None) as session:
            session.run(train_op)
            first_step_secs = time.time() - launched_at
            for _ in range(warmup - 1):
                session.run(train_op)
            timed_from = time.perf_counter()
            for _ in range(train_steps - warmup):
                session.run(train_op)
            steps_per_sec = (train_steps - warmup) / (time.perf_counter() - timed_from)
    print(json.dumps({"first_step_secs": round(first_step_secs, 3), "steps_per_sec": steps_per_sec,
                      "warmup_steps": warmup}))


def run_plain(model: str, train_steps: int, timeout_secs: float) -> PlainResult:
    """`plain_child` in a subprocess of this script, sampled like the launcher's tasks."""
    argv = [sys.executable, os.path.abspath(__file__), "--plain_child", model,
            f"--train_steps={train_steps}", f"--launched_at={time.time()!r}"]
    proc = start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with RssSampler(proc.pid, "plain") as sampler:
            try:
                out, err = proc.communicate(timeout=timeout_secs)
            except subprocess.TimeoutExpired:
                raise BenchmarkError(f"plain {model}: no end after {timeout_secs:.0f} s") from None
        if proc.returncode != 0:
            raise BenchmarkError(f"plain {model}: exit code {proc.returncode}:\n{err[-2000:]}")
        figures = json.loads(out.strip().splitlines()[-1])
        return PlainResult(model=model, train_steps=train_steps, warmup_steps=figures["warmup_steps"],
                           first_step_secs=figures["first_step_secs"], steps_per_sec=figures["steps_per_sec"],
                           rss_mb=round(max(sampler.peak_mb.values()), 1))
    finally:
        kill_all([proc])


# -- the floor: bare TensorFlow servers --

def _wait_ready(proc: subprocess.Popen, ready: list[Optional[float]], i: int) -> None:
    for line in proc.stdout:
        if line.strip() == "ready":
            ready[i] = time.monotonic()
            return


def run_floor(spec: str, timeout_secs: float) -> FloorResult:
    """N processes that only import TensorFlow and start a server of the spec's cluster (ports picked)."""
    resolved = ports.resolve_local(spec_lib.load(spec))
    cluster = resolved.cluster_dict(training_only=True)
    tasks = [t for t in resolved.tasks() if t.job in cluster]
    ready: list[Optional[float]] = [None] * len(tasks)
    procs: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        for task in tasks:
            procs.append(start([sys.executable, "-c", FLOOR_PROGRAM, json.dumps(cluster), task.job,
                                str(task.index)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        readers = [threading.Thread(target=_wait_ready, args=(p, ready, i), daemon=True)
                   for i, p in enumerate(procs)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(max(0.0, started + timeout_secs - time.monotonic()))
        if None in ready:
            raise BenchmarkError(f"floor {spec}: {ready.count(None)} of {len(tasks)} servers never ready")
        return FloorResult(spec=spec, processes=len(tasks), ready_secs=round(max(ready) - started, 3))
    finally:
        kill_all(procs)


# -- recovery: a task killed mid-training --

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
STEP_LINE = re.compile(r"\bstep = (\d+)")  # tf.compat.v1.train.LoggingTensorHook: "loss = ..., step = N (...)"
# A chief session being created: the launcher's own line, then TensorFlow's; both name the checkpoint.
RESTORE_LINE = re.compile(r"(?:restoring|Restoring parameters from) (\S+)")
ABSL_TIME = re.compile(r"^[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6}) ")  # I1126 02:27:30.554600


@dataclasses.dataclass
class RecoveryResult:
    victim: str
    exit_code: Optional[int]
    kill_time: float  # Unix epoch, as run.json's attempt times
    step_at_kill: Optional[int]
    last_saved: Optional[int]
    recovered: bool  # seen in the logs within RECOVERY_WAIT_SECS
    recovery_secs: Optional[float]  # kill -> next global step, from run.json
    log_step_secs: Optional[float]  # kill -> first "step =" log line of the recovered session
    respawn_secs: Optional[float]  # kill -> the victim's next process started (run.json)
    restored_from: Optional[int]  # the step the chief's first session after the kill started from
    steps_lost: Optional[int]
    restored_checkpoint: Optional[int]  # the step of the checkpoint that the chief restored after the kill (log)
    rolled_back: Optional[int]  # highest step logged before that session - restored_checkpoint
    restarts: dict[str, int]
    floor_secs: Optional[float] = None
    notes: list[str] = dataclasses.field(default_factory=list)


def _read_log(path: str, offset: int = 0) -> tuple[str, int]:
    """The text of `path` from byte `offset` on, and the offset of its end ("" while it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return "", offset
    return data.decode(errors="replace"), offset + len(data)


def _log_steps(text: str) -> list[int]:
    return [int(m.group(1)) for m in STEP_LINE.finditer(text)]


def _absl_time(line: str, year: int) -> Optional[float]:
    """The Unix time of an absl log line ("I1126 02:27:30.554600 ..." is local time, without the year)."""
    match = ABSL_TIME.match(line)
    if match is None:
        return None
    month, day, hour, minute, second, micros = map(int, match.groups())
    try:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1)) + micros / 1e6
    except (OverflowError, ValueError):
        return None


def _recovered_text(victim: str, logs: dict[str, str], offsets: dict[str, int]) -> str:
    """What the logs hold after the kill from the point where recovery shows, or "" when it does not yet:
    for a chief or worker, its log from its next attempt's header; for a ps, the chief's log from its
    first session restore after the kill."""
    if victim.split(":")[0] == PS:
        text, _ = _read_log(logs[CHIEF + ":0"], offsets[CHIEF + ":0"])
        match = RESTORE_LINE.search(text)
        return text[match.start():] if match else ""
    text, _ = _read_log(logs[victim], offsets[victim])
    start = text.find(f"=== {victim} attempt ")
    return text[start:] if start >= 0 else ""


def _timed_steps(text: str, year: int) -> list[tuple[float, int]]:
    """(time, step) of every "step = N" log line with an absl timestamp."""
    found = []
    for line in text.splitlines():
        step, at = STEP_LINE.search(line), _absl_time(line, year)
        if step and at is not None:
            found.append((at, int(step.group(1))))
    return found


def _first_step_line(text: str) -> Optional[str]:
    return next((line for line in text.splitlines() if STEP_LINE.search(line)), None)


def _task_process(launcher_pid: int, key: str) -> psutil.Process:
    """The launcher's live task process `key` ("ps:0"), found by its --job_name/--task_index."""
    for child in psutil.Process(launcher_pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and _task_key(child.cmdline()) == key:
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


def _keep_logs(workdir: str, model_dir: str, keep_dir: str) -> None:
    """The launcher's log, the tasks' logs and run.json of a trial, copied to `keep_dir`."""
    os.makedirs(keep_dir, exist_ok=True)
    for source in (os.path.join(workdir, "launcher.log"), os.path.join(model_dir, "logs"), run_record.path(model_dir)):
        target = os.path.join(keep_dir, os.path.basename(source))
        if os.path.isdir(source):
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif os.path.exists(source):
            shutil.copy(source, target)


def run_recovery(victim: str, timeout_secs: float, keep_dir: Optional[str] = None) -> RecoveryResult:
    """One local2 run of the MLP whose task `victim` is SIGKILLed mid-training; the model directory is
    deleted afterwards (its logs and run.json copied to `keep_dir` first, when given)."""
    workdir = tempfile.mkdtemp(prefix="launcher-benchmark-recovery-")
    model_dir, log_path = os.path.join(workdir, "model"), os.path.join(workdir, "launcher.log")
    argv = [sys.executable, "-m", "launcher", "run", f"--spec={RECOVERY_SPEC}", f"--model={RECOVERY_MODEL}",
            f"--model_dir={model_dir}", f"--train_steps={RECOVERY_TRAIN_STEPS}",
            f"--chief_flags=--save_checkpoint_steps={RECOVERY_SAVE_STEPS} "
            f"--log_step_count_steps={RECOVERY_LOG_STEPS}",
            f"--worker_flags=--log_step_count_steps={RECOVERY_LOG_STEPS}"]
    logs = {key: task_output.log_path(model_dir, TaskId(key.split(":")[0], int(key.split(":")[1])))
            for key in {*TRAINERS, victim}}
    proc = None
    try:
        with open(log_path, "w") as log:
            proc = start(argv, stdout=log, stderr=subprocess.STDOUT)
        waited = _wait_until(lambda: (checkpoint_names.newest_step(model_dir) or -1) >= RECOVERY_KILL_AFTER_SAVED,
                             proc, timeout_secs)
        if waited != "ok":
            raise BenchmarkError(f"recovery {victim}: no checkpoint at step {RECOVERY_KILL_AFTER_SAVED} ("
                                 f"{'launcher exited ' + str(proc.returncode) if waited == 'exited' else waited});"
                                 f" log:\n{_log_tail(log_path)}")
        target = _task_process(proc.pid, victim)
        # The moment of the kill: what the logs show, and what is saved, just before it.
        offsets, logged_steps = {}, []
        for key, path in logs.items():
            text, offsets[key] = _read_log(path)
            if key in TRAINERS:
                logged_steps += _log_steps(text)
        step_at_kill = max(logged_steps, default=None)
        last_saved = checkpoint_names.newest_step(model_dir)
        target.send_signal(signal.SIGKILL)
        kill_time = time.time()
        waited = _wait_until(lambda: _first_step_line(_recovered_text(victim, logs, offsets)) is not None,
                             proc, RECOVERY_WAIT_SECS)
        notes = []
        if waited == "ok":
            time.sleep(RECOVERY_SETTLE_SECS)
        elif waited == "timeout":
            notes.append(f"no step logged by the recovered {'chief' if victim.startswith(PS) else victim} "
                         f"within {RECOVERY_WAIT_SECS:.0f} s of the kill")
        else:
            notes.append(f"the launcher exited {proc.returncode} by itself after the kill; its log ends:\n"
                         f"{_log_tail(log_path, 8)}")
        stop_launcher(proc)  # SIGTERM: the chief saves, the launcher writes run.json and exits 143
        if proc.returncode != 143 and waited != "exited":
            notes.append(f"launcher exit code {proc.returncode} after SIGTERM, not 143; its log ends:\n"
                         f"{_log_tail(log_path, 8)}")
        runs = run_record.read(model_dir)
        if not runs:
            raise BenchmarkError(f"recovery {victim}: no run.json after the launcher exited {proc.returncode}; "
                                 f"log:\n{_log_tail(log_path)}")
        year = time.localtime(kill_time).tm_year
        log_line = _first_step_line(_recovered_text(victim, logs, offsets))
        log_time = _absl_time(log_line, year) if log_line else None
        restore = RESTORE_LINE.search(_read_log(logs[CHIEF + ":0"], offsets[CHIEF + ":0"])[0])
        restored = checkpoint_names.step_of(restore.group(1)) if restore else -1
        timed_steps = [pair for key in TRAINERS for pair in _timed_steps(_read_log(logs[key])[0], year)]
        return _recovery_result(victim, runs[-1], proc.returncode, kill_time, step_at_kill, last_saved,
                                waited == "ok", None if log_time is None else log_time - kill_time,
                                None if restored < 0 else restored, timed_steps, notes)
    finally:
        if proc is not None:
            stop_launcher(proc)
        if keep_dir is not None:
            _keep_logs(workdir, model_dir, keep_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def _recovery_result(victim: str, run: dict, exit_code: Optional[int], kill_time: float,
                     step_at_kill: Optional[int], last_saved: Optional[int], recovered: bool,
                     log_step_secs: Optional[float], restored_checkpoint: Optional[int],
                     timed_steps: list[tuple[float, int]], notes: list[str]) -> RecoveryResult:
    tasks = {f"{t['job']}:{t['index']}": t for t in run["tasks"]}
    attempts = tasks[victim]["attempts"]
    later = attempts[1] if len(attempts) > 1 else None
    # The chief's first session created after the kill (a restarted chief's, or a ps kill's re-created one).
    chief_session = next((s for a in tasks[CHIEF + ":0"]["attempts"] for s in a["sessions"]
                          if s["time"] > kill_time), None)
    if victim.split(":")[0] == PS:
        next_step = chief_session["time"] if chief_session else None
    else:
        next_step = later["first_step"] if later else None
    restored_from = chief_session["step"] if chief_session else None
    if restored_from is not None:
        steps_lost = None if step_at_kill is None else step_at_kill - restored_from
    else:
        steps_lost = 0 if victim.split(":")[0] == WORKER else None  # the chief kept its session
    # What the restore undid: the highest step reached (as logged) before the new session, which may be
    # past the step at the kill when the other trainer kept training meanwhile.
    rolled_back = 0 if chief_session is None and victim.split(":")[0] == WORKER else None
    if chief_session is not None and restored_checkpoint is not None:
        reached = max((step for at, step in timed_steps if at < chief_session["time"]), default=None)
        rolled_back = None if reached is None else reached - restored_checkpoint
    if later is None:
        notes.append(f"run.json shows no restart of {victim}")

    def since_kill(t: Optional[float]) -> Optional[float]:
        return None if t is None else round(t - kill_time, 3)

    return RecoveryResult(
        victim=victim, exit_code=exit_code, kill_time=kill_time, step_at_kill=step_at_kill,
        last_saved=last_saved, recovered=recovered, recovery_secs=since_kill(next_step),
        log_step_secs=None if log_step_secs is None else round(log_step_secs, 3),
        respawn_secs=since_kill(later["started"] if later else None), restored_from=restored_from,
        steps_lost=steps_lost, restored_checkpoint=restored_checkpoint, rolled_back=rolled_back,
        restarts={name: t["restarts"] for name, t in tasks.items()}, notes=notes)


def recovery_benchmark(victims: Sequence[str], repeat: int, timeout_secs: float, errors: list[str],
                       keep_logs: Optional[str] = None) -> list[RecoveryResult]:
    results = []
    for attempt in range(1, repeat + 1):
        for victim in victims:
            print(f"[{attempt}/{repeat}] recovery {RECOVERY_SPEC} {RECOVERY_MODEL}, kill {victim}",
                  file=sys.stderr, flush=True)
            keep_dir = os.path.join(keep_logs, f"{victim.replace(':', '-')}-{attempt}") if keep_logs else None
            result = _attempt(lambda: run_recovery(victim, timeout_secs, keep_dir), errors)
            if result is None:
                continue
            # The floor beside it, under the same load, with the trial's processes gone.
            floor = _attempt(lambda: run_floor("local1", timeout_secs), errors)
            result.floor_secs = floor.ready_secs if floor else None
            results.append(result)
    return results


RECOVERY_COLUMNS = ("victim", "recovery s", "log step s", "respawn s", "floor s", "step at kill", "last saved",
                    "ckpt restored", "restored from", "steps lost", "rolled back", "restarts c/w/p", "exit")


def _int(value: Optional[int]) -> str:
    return "-" if value is None else str(value)


def recovery_row(r: RecoveryResult) -> list[str]:
    restarts = "/".join(_int(r.restarts.get(key)) for key in ("chief:0", "worker:0", "ps:0"))
    return [r.victim, _fmt(r.recovery_secs) + ("" if r.recovered else "*"), _fmt(r.log_step_secs),
            _fmt(r.respawn_secs), _fmt(r.floor_secs), _int(r.step_at_kill), _int(r.last_saved),
            _int(r.restored_checkpoint), _int(r.restored_from), _int(r.steps_lost), _int(r.rolled_back), restarts,
            _int(r.exit_code)]


RECOVERY_LEGEND = f"""\
{RECOVERY_SPEC}, {RECOVERY_MODEL.rsplit('.', 1)[-1]}; victim SIGKILLed once a checkpoint at step >= \
{RECOVERY_KILL_AFTER_SAVED} exists (checkpoints every {RECOVERY_SAVE_STEPS} steps)
recovery s: kill to the next global step: the restarted victim's first step (run.json); ps: the chief's
  first session created after the kill (* = not recovered within {RECOVERY_WAIT_SECS:.0f} s)
log step s: kill to the first "step =" log line of the recovered process (ps: of the chief's new session);
  that hook logs every {RECOVERY_LOG_STEPS} steps of its process, so it may come a few steps late
respawn s: kill to the start of the victim's next process; floor s: one bare process importing TensorFlow
  and starting a server, launch to ready (measured after each trial)
step at kill: highest "step = N" in the chief's and worker's logs (they lag by up to {RECOVERY_LOG_STEPS} steps)
last saved: the newest checkpoint then; ckpt restored: the checkpoint the chief restored after the kill
  (its log); restored from: the global step its first session after the kill started at, which is past
  that checkpoint when the worker kept training meanwhile (- = none: the chief kept its session)
steps lost: step at kill - restored from; rolled back: the highest step logged before that session -
  ckpt restored, i.e. the steps the restore undid, the worker's steps while the chief was down included
restarts c/w/p: restarts of chief, worker, ps in run.json; exit: the launcher's (143 = preempted by SIGTERM)"""


def recovery_report(results: list[RecoveryResult]) -> str:
    if not results:
        return "recovery: no trial produced figures"
    lines = [format_table([recovery_row(r) for r in results], RECOVERY_COLUMNS, left=1), "", RECOVERY_LEGEND]
    notes = [f"{r.victim}: {note}" for r in results for note in r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


# -- the table --

def _median(values: Iterable[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = ("spec", "model", "backend", "tasks", "floor s", "pre s", "1st step max s", "min s", "plain 1st s",
           "steps/s", "plain steps/s", "RSS max MB", "chief", "worker", "ps", "launcher", "plain MB")


def table_row(spec: str, model: str, backend: str, runs: list[LauncherResult], plains: list[PlainResult],
              floors: list[FloorResult]) -> list[str]:
    def med(get: Callable[[Any], Optional[float]], items: list) -> Optional[float]:
        return _median(get(item) for item in items)

    incomplete = "*" if any(r.tasks_without_first_step for r in runs) else ""
    return [spec, model.rsplit(".", 1)[-1], backend, str(floors[0].processes) if floors else "-",
            _fmt(med(lambda f: f.ready_secs, floors)), _fmt(med(lambda r: r.prestart_secs, runs)),
            _fmt(med(lambda r: r.first_step_max_secs, runs)) + incomplete,
            _fmt(med(lambda r: r.first_step_min_secs, runs)), _fmt(med(lambda p: p.first_step_secs, plains)),
            _fmt(med(lambda r: r.steps_per_sec, runs), 0), _fmt(med(lambda p: p.steps_per_sec, plains), 0),
            _fmt(med(lambda r: r.rss_max(), runs), 0), _fmt(med(lambda r: r.rss_max(CHIEF), runs), 0),
            _fmt(med(lambda r: r.rss_max(WORKER), runs), 0), _fmt(med(lambda r: r.rss_max(PS), runs), 0),
            _fmt(med(lambda r: r.rss_mb.get("launcher"), runs), 0), _fmt(med(lambda p: p.rss_mb, plains), 0)]


def format_table(rows: list[list[str]], columns: Sequence[str] = COLUMNS, left: int = 3) -> str:
    """`left`: how many leading columns are text (left-aligned); the rest are numbers."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in rows)])


LEGEND = """\
backend: local: task processes on this machine; ray: --backend ray, the launcher starts and stops a local
  Ray instance (in a loopback-only network namespace); floor and plain are the same on both rows
floor s: N bare processes import TensorFlow and start a server, launch to all ready (N = tasks)
pre s: launcher process start to its first task's start (process create times); ray: Ray's start included
1st step max/min s: run.json first_step_secs over chief and workers (* = a task never stepped); counted
  from the launcher's start (its CLI import, just after its interpreter starts), so pre s is part of it
steps/s: median of the chief's global_step/sec summaries (every 100 steps; the first, with the
  warm-up, left out when 2 others remain); plain: one process, no cluster, timed after a warm-up
RSS MB: peak resident memory; max over tasks, then per role (max over its tasks), the launcher itself
  (Ray's own processes not included), and the plain process"""


# -- main --

def steps_for(model: str, override: Optional[int]) -> int:
    return override or DEFAULT_TRAIN_STEPS.get(model, FALLBACK_TRAIN_STEPS)


def _attempt(trial: Callable[[], Any], errors: list[str]) -> Optional[Any]:
    """Run one trial; a failed trial is reported and the benchmark goes on."""
    try:
        return trial()
    except BenchmarkError as e:
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        errors.append(str(e))
        return None


def benchmark(specs: Sequence[str], models: Sequence[str], train_steps: Optional[int], repeat: int,
              timeout_secs: float, backends: Sequence[str] = ("local",)) -> dict[str, list]:
    results: dict[str, list] = {"launcher": [], "plain": [], "floor": [], "errors": [], "skipped": []}
    if "ray" in backends:
        why = ray_unavailable()
        if why is not None:
            results["skipped"].append(f"ray rows skipped: {why}")
            print(results["skipped"][-1], file=sys.stderr, flush=True)
            backends = [b for b in backends if b != "ray"]
    errors = results["errors"]
    for attempt in range(1, repeat + 1):
        for model in models:
            print(f"[{attempt}/{repeat}] plain {model}", file=sys.stderr, flush=True)
            results["plain"].append(_attempt(lambda: run_plain(model, steps_for(model, train_steps),
                                                               timeout_secs), errors))
        for spec in specs:
            print(f"[{attempt}/{repeat}] floor {spec}", file=sys.stderr, flush=True)
            results["floor"].append(_attempt(lambda: run_floor(spec, timeout_secs), errors))
            for model in models:
                for backend in backends:
                    print(f"[{attempt}/{repeat}] launcher {spec} {model} {backend}", file=sys.stderr, flush=True)
                    results["launcher"].append(_attempt(
                        lambda: run_launcher(spec, model, steps_for(model, train_steps), timeout_secs, backend),
                        errors))
    for kind in ("launcher", "plain", "floor"):
        results[kind] = [r for r in results[kind] if r is not None]
    return results


def report(results: dict[str, list], specs: Sequence[str], models: Sequence[str],
           backends: Sequence[str] = ("local",)) -> str:
    skipped = results.get("skipped", [])
    shown = [b for b in backends if not (b == "ray" and skipped)]
    rows = [table_row(spec, model, backend,
                      [r for r in results["launcher"] if (r.spec, r.model, r.backend) == (spec, model, backend)],
                      [p for p in results["plain"] if p.model == model],
                      [f for f in results["floor"] if f.spec == spec])
            for spec in specs for model in models for backend in shown]
    lines = [format_table(rows), *skipped, "", LEGEND]
    notes = [f"{r.spec} {r.model.rsplit('.', 1)[-1]} {r.backend}: {note}" for r in results["launcher"]
             for note in r.notes]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def to_json(results: dict[str, list]) -> dict:
    def raw(item: Any) -> Any:
        if isinstance(item, LauncherResult):
            return {**dataclasses.asdict(item), "steps_per_sec": item.steps_per_sec}
        return dataclasses.asdict(item) if dataclasses.is_dataclass(item) else item

    return {kind: [raw(item) for item in items] for kind, items in results.items()}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--specs", default=",".join(DEFAULT_SPECS), help="comma-separated spec names or files")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model modules")
    parser.add_argument("--train_steps", type=int, default=None,
                        help="global steps for every model (default: " +
                             ", ".join(f"{m.rsplit('.', 1)[-1]} {n}" for m, n in DEFAULT_TRAIN_STEPS.items()) +
                             f", others {FALLBACK_TRAIN_STEPS})")
    parser.add_argument("--backends", default="local",
                        help="comma-separated: local, ray (--backend ray, a local Ray instance in a loopback-only "
                             "network namespace); one row per backend")
    parser.add_argument("--repeat", type=int, default=1, help="trials of each kind; the table shows medians")
    parser.add_argument("--out_json", default=None, help="write every raw figure to this file")
    parser.add_argument("--timeout_secs", type=float, default=1800.0, help="per trial")
    parser.add_argument("--recovery", action="store_true",
                        help=f"after the table, the recovery benchmark: a task killed mid-training ({RECOVERY_SPEC}, "
                             f"{RECOVERY_MODEL})")
    parser.add_argument("--recovery_only", action="store_true", help="the recovery benchmark alone")
    parser.add_argument("--victims", default=",".join(RECOVERY_VICTIMS),
                        help="comma-separated tasks to kill in the recovery benchmark")
    parser.add_argument("--keep_logs", default=None,
                        help="copy each recovery trial's logs and run.json to DIR/<victim>-<repeat>/")
    parser.add_argument("--plain_child", default=None, help=argparse.SUPPRESS)  # internal: run_plain's child
    parser.add_argument("--launched_at", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1 or (args.train_steps is not None and args.train_steps < 2):
        parser.error("--repeat must be >= 1 and --train_steps >= 2")
    backends = [b for b in args.backends.split(",") if b]
    if not backends or any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        parser.error(f"--backends: expected some of {', '.join(BACKENDS)}, each once")
    unknown = [v for v in args.victims.split(",") if v and v not in RECOVERY_VICTIMS]
    if unknown or not any(args.victims.split(",")):
        parser.error(f"--victims: expected some of {', '.join(RECOVERY_VICTIMS)}")
    return args


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the trials' clean-up


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.plain_child:
        plain_child(args.plain_child, steps_for(args.plain_child, args.train_steps), args.launched_at)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    specs = [s for s in args.specs.split(",") if s]
    models = [m for m in args.models.split(",") if m]
    backends = [b for b in args.backends.split(",") if b]
    if args.recovery_only:
        results: dict[str, list] = {"launcher": [], "plain": [], "floor": [], "errors": []}
    else:
        results = benchmark(specs, models, args.train_steps, args.repeat, args.timeout_secs, backends)
        print(report(results, specs, models, backends), flush=True)
    if args.recovery or args.recovery_only:
        victims = [v for v in args.victims.split(",") if v]
        results["recovery"] = recovery_benchmark(victims, args.repeat, args.timeout_secs, results["errors"],
                                                 args.keep_logs)
        print(("\n" if not args.recovery_only else "") + recovery_report(results["recovery"]))
    if args.out_json:
        with open(args.out_json, "w") as f:
            json.dump(to_json(results), f, indent=2)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
