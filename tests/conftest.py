"""Fixtures that start real launcher processes and guarantee that none of their tasks outlives a test.

Every process a test starts carries a marker in its environment, which tasks inherit; after each test,
whatever still carries it is killed, and the test fails if anything had to be.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Optional

import psutil
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS = pathlib.Path(__file__).resolve().parent
MARKER = "LAUNCHER_TEST_RUN"

sys.path.insert(0, str(REPO / "scripts"))  # the process helpers that the benchmark uses too
from bench.task_processes import marked, task_name  # noqa: E402
from bench.warm_base import WarmBase  # noqa: E402

import tf_reader  # noqa: E402


# -- tiers: `pytest -m unit` runs the quick ones; .ci/run runs everything, as root --
# unit: in-process (or a plain Python subprocess): no task cluster, no TensorFlow task. cluster: real task
# processes on this machine. slow: minutes (hang waits, multi-host beds). root: namespaces, mounts, cgroups.
# A module's own `pytestmark` adds to this table; a module missing from it is "cluster".
TIERS = {
    "unit": {"test_checkpoint_names", "test_eval_flags", "test_exit_codes", "test_export", "test_export_storage",
             "test_hang_units", "test_ports", "test_progress", "test_run_record", "test_spec",
             "test_step_deadline", "test_task_command", "test_task_output", "test_tf_config",
             "test_supervisor_loop", "test_cli", "test_stop_signals"},
    "slow": {"test_hang", "test_slurm", "test_ray_hosts", "test_ray_backend", "test_export_on_hosts", "test_isolation",
             "test_hostbed"},
    "root": {"test_slurm", "test_ray_hosts", "test_ray_backend", "test_export_on_hosts", "test_isolation", "test_hostbed"},
}
ROOT_FIXTURES = {"cut_off_pid", "small_disk", "memory_cgroup"}
# Skips that root may still see in CI (.ci/run sets LAUNCHER_STRICT_SKIPS): none today. A skip with any
# other reason there means a test did not run where it should have, and fails the session.
ALLOWED_SKIPS: tuple[str, ...] = ()

# Tests on beds of hosts and Ray clusters (root, network namespaces, a Ray head each) run one at a time
# within a group, on one pytest-xdist worker (`--dist loadgroup` in setup.cfg), beside the other tests and
# the other groups: each bed has namespaces, addresses and temp dirs of its own. One group was the whole
# run's length: the Ray tests alone took 15 of its 17 minutes on four workers. A module-scoped cluster
# (`ray3`, `slurm3`) is made once only if its tests share a worker: they share a group.
BED_GROUPS = {"test_slurm": "slurm", "test_hostbed": "slurm", "test_export_on_hosts": "slurm",
              "test_isolation": "slurm", "test_ray_hosts": "ray_hosts", "test_ray_backend": "ray_backend"}
# Tests that lose a host bring up a Ray cluster of their own: they need not wait for the shared one's.
OWN_BED_FIXTURES = {"fresh_ray3": "ray_hosts_lost"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        own = {m.name for m in item.iter_markers()}
        tiers = {tier for tier, modules in TIERS.items() if module in modules}
        if "cluster" in own:
            tiers.discard("unit")  # a test of a unit module that starts a cluster says so itself
        if not (tiers | own) & {"unit", "cluster"}:
            tiers.add("cluster")
        if ROOT_FIXTURES & set(item.fixturenames):
            tiers.add("root")
        for tier in sorted(tiers - own):
            item.add_marker(tier)
        if module in BED_GROUPS:
            own_bed = [OWN_BED_FIXTURES[f] for f in item.fixturenames if f in OWN_BED_FIXTURES]
            item.add_marker(pytest.mark.xdist_group(own_bed[0] if own_bed else BED_GROUPS[module]))


_skips: list[tuple[str, str]] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skips.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    tf_reader.close()
    if _warm_base is not None:
        _warm_base.stop()
    if os.environ.get("LAUNCHER_STRICT_SKIPS") != "1":
        return
    unexpected = [(n, r) for n, r in _skips if not any(a in r for a in ALLOWED_SKIPS)]
    if unexpected:
        sys.stderr.write("\nskips that CI (as root) must not see:\n"
                         + "".join(f"  {n}: {r}\n" for n, r in unexpected))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _marked(value: str) -> list[psutil.Process]:
    return marked(MARKER, value)


ACTOR_TITLE = "ray::_TaskRunner"  # a Ray actor process of the launcher's (its process title)


def is_ray_actor(proc: psutil.Process) -> bool:
    try:
        return bool(proc.cmdline()) and proc.cmdline()[0].startswith(ACTOR_TITLE)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _naming(path: pathlib.Path) -> list[psutil.Process]:
    """Processes whose command line names `path` (a test's model dirs are under its tmp_path): task
    processes wherever they run, marked or not (a Ray worker's child gets the environment Ray gives it)."""
    found, key = [], str(path)
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and any(key in arg for arg in proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _ray_actors() -> list[psutil.Process]:
    """The launcher's Ray actors on the Ray beds of this session (tests/raybed.py), found by their process
    title among the processes of the beds' own network namespaces: Ray starts them, not the test, so
    they carry no marker. Once a run is over none may be left: its launcher kills its actors."""
    raybed = sys.modules.get("raybed")
    return raybed.actor_processes(is_ray_actor) if raybed is not None else []


class Launch:
    """One `python -m launcher ...` process, with its output in files."""

    def __init__(self, args: list[str], cwd: pathlib.Path, env: dict[str, str], name: str,
                 prefix: tuple[str, ...] = ()):
        self.out_path = cwd / f"{name}.out"
        self.err_path = cwd / f"{name}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "launcher", *args], cwd=cwd, env=env,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def wait(self, timeout: float = 240) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running after {timeout}s\n{self.stderr[-3000:]}")

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def tasks(self) -> dict[str, psutil.Process]:
        """The launcher's task processes by name ("worker:0"): its children, or its warm process's (which
        a warm base may have forked: its tasks name the launcher in their environment)."""
        found = {}
        for child in psutil.Process(self.proc.pid).children(recursive=True) + _forked_for(self.proc.pid):
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue  # ended, not yet reaped by the launcher
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            name = task_name(child)
            if name is not None:
                found[name] = child
        return found


def tests_env() -> dict[str, str]:
    """The environment of what the tests start: the tests' models importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    return env


_warm_base: Optional[WarmBase] = None  # this test worker's (see `warm_base`)


def warm_base(tmp_path_factory) -> WarmBase:
    """This test worker's warm base (`launcher.task.warm.base`): TensorFlow imported once for all the local
    runs of the worker's tests, as a user may run one for all the runs of a machine. Started by the first
    test that launches a run, stopped by pid when the worker ends (`pytest_sessionfinish`)."""
    global _warm_base
    if _warm_base is None or _warm_base.proc.poll() is not None:
        _warm_base = WarmBase(str(tmp_path_factory.mktemp("warm_base")), tests_env(), timeout_secs=180)
    return _warm_base


def _forked_for(launcher_pid: int) -> list[psutil.Process]:
    """The tasks of a launcher whose warm process the warm base forked (and the warm processes)."""
    return _warm_base.forks_for(launcher_pid) if _warm_base is not None else []


class Runner:
    def __init__(self, tmp_path: pathlib.Path, warm_base: Optional[str] = None):
        self.tmp_path = tmp_path
        self.marker = uuid.uuid4().hex
        self.launches: list[Launch] = []
        # The local runs' warm processes come from the worker's warm base; None: each run imports its own.
        self.warm_base = warm_base

    def env(self) -> dict[str, str]:
        env = tests_env()
        env[MARKER] = self.marker
        env.pop("LAUNCHER_WARM_BASE", None)
        if self.warm_base is not None:
            env["LAUNCHER_WARM_BASE"] = self.warm_base
        return env

    def start(self, *args: str, prefix: tuple[str, ...] = ()) -> Launch:
        launch = Launch(list(args), self.tmp_path, self.env(), f"launch{len(self.launches)}", prefix)
        self.launches.append(launch)
        return launch

    def run(self, *args: str, timeout: float = 240, prefix: tuple[str, ...] = ()) -> Launch:
        launch = self.start(*args, prefix=prefix)
        launch.wait(timeout)
        return launch

    def marked_tasks(self, job: str) -> list[psutil.Process]:
        """Task processes of `job` started under this runner, wherever they run (a Ray worker's child)."""
        found = []
        for proc in _marked(self.marker):
            name = task_name(proc)
            if name is not None and name.split(":")[0] == job:
                found.append(proc)
        return found

    def leftovers(self) -> list[psutil.Process]:
        """What a test's runs may leave behind: marked processes, task processes naming its directory, and
        the launcher's Ray actors."""
        found = {p.pid: p for p in _marked(self.marker) + _naming(self.tmp_path) + _ray_actors()}
        return list(found.values())

    def cleanup(self) -> list[str]:
        for launch in self.launches:
            if launch.proc.poll() is None:
                os.killpg(launch.proc.pid, signal.SIGKILL)
                launch.proc.wait()
        # Tasks run in sessions of their own: give them a moment to follow their launcher, then kill.
        deadline = time.monotonic() + 5
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.leftovers()
        names = [" ".join(p.cmdline()[:6]) for p in left if p.is_running()]
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        return names


@pytest.fixture
def runner(tmp_path, tmp_path_factory):
    r = Runner(tmp_path, warm_base(tmp_path_factory).socket)
    try:
        yield r
    finally:
        left = r.cleanup()
    assert not left, f"processes left behind: {left}"


def wait_for(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def logged_step(log: pathlib.Path) -> int:
    """The highest global step that a task's LoggingTensorHook has logged ("loss = ..., step = N")."""
    if not log.exists():
        return -1
    return max((int(m) for m in re.findall(r"step = (\d+)", log.read_text())), default=-1)


def checkpoint_steps(model_dir: pathlib.Path) -> list[int]:
    return sorted(int(p.name[len("model.ckpt-"):-len(".index")]) for p in model_dir.glob("model.ckpt-*.index"))


def last_run(model_dir: pathlib.Path) -> dict:
    return json.loads((model_dir / "run.json").read_text())["runs"][-1]


def read_variables(model_dir: pathlib.Path, step: Optional[int] = None) -> dict:
    """The variables of a checkpoint (the newest by default), read back with TensorFlow in another process
    (`tf_reader`) so that the test process stays free of TensorFlow."""
    steps = checkpoint_steps(model_dir)
    prefix = model_dir / f"model.ckpt-{steps[-1] if step is None else step}"
    code = ("r = tf.train.load_checkpoint(sys.argv[1])\n"
            "print(json.dumps({n: r.get_tensor(n).tolist() for n in r.get_variable_to_shape_map()}))")
    return tf_reader.run_json(code, str(prefix))


def run_with_tf_process(code: str, *args: str) -> subprocess.CompletedProcess:
    """Run `code` (with `json`, `sys` and `tf` imported) in a fresh process, so that the test process stays
    free of TensorFlow; its exit code and output."""
    return subprocess.run([sys.executable, "-c", "import json, sys\nimport tensorflow as tf\n" + code, *args],
                          capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          timeout=120)


def run_with_tf(code: str, *args: str):
    """`run_with_tf_process`, for code that prints one JSON line: that line, read."""
    out = run_with_tf_process(code, *args)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
