"""Warm starts: tasks forked from one warm process per run are the task program as a cold start runs it."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import portpicker
import psutil
import pytest

from conftest import checkpoint_steps, last_run, logged_step, wait_for
from launcher.cluster import tf_config, warm_protocol
from launcher.cluster.spec import TaskId
from launcher.launch.backends.warm import StartCold, WarmOptions, WarmProcess


@pytest.fixture
def runner(runner):
    """These tests are about a run's own warm process: started by its launcher, with no warm base."""
    runner.warm_base = None
    return runner


def _chief_argv(model_dir, train_steps):
    return [sys.executable, "-m", "launcher.task", "--model=models.draws", f"--model_dir={model_dir}",
            f"--train_steps={train_steps}", "--save_summaries_steps=1000", "--log_step_count_steps=1000"]


# Objects frozen by a task's imports (TensorFlow's alone make about 280 000): a collection never walks them.
IMPORTS_FROZEN = 100_000


def _gc_state(lines):
    """(enabled, frozen objects) as the task printed them when its model was built (models.draws)."""
    said = [line.split() for line in lines if line.startswith("gc: ")]
    assert len(said) == 1, lines[-30:]
    return said[0][1] == "enabled=True", int(said[0][2].split("=")[1])


def test_fifty_tasks_forked_in_a_row_each_train_and_exit_0(runner, tmp_path):
    """One warm process, one import: 50 chiefs one after the other, each training 4 more steps from the
    checkpoint of the one before, each with its own pid, session, TF_CONFIG, output and random state, and
    the warm process's objects frozen (its collections never write to the pages the tasks share)."""
    model_dir = tmp_path / "model"
    env = {**runner.env(), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    warm = WarmProcess(WarmOptions("models.draws", env))
    try:
        pids, draws = [], []
        for i in range(1, 51):
            port = portpicker.pick_unused_port()
            task_env = {**env, tf_config.ENV_VAR: tf_config.build({"chief": [f"localhost:{port}"]}, TaskId("chief", 0))}
            lines = []
            task = warm.start(_chief_argv(model_dir, 4 * i), task_env, lines.append)
            assert os.getpgid(task.pid) == task.pid  # a session of its own: the launcher signals its group
            code = wait_for(lambda: (c := task.poll()) is not None and (c,), timeout=120, what=f"fork {i}")[0]
            assert code == 0, "".join(lines[-30:])
            assert any(f"serving at grpc://localhost:{port}" in line for line in lines), "".join(lines[-30:])
            assert checkpoint_steps(model_dir)[-1] == 4 * i
            pids.append(task.pid)
            draws += [line for line in lines if line.startswith("numpy draw: ")]
            enabled, frozen = _gc_state(lines)
            assert enabled and frozen > IMPORTS_FROZEN, (enabled, frozen)
        assert len(set(pids)) == 50
        assert len(draws) == 50 and len(set(draws)) == 50, draws
        assert psutil.Process(warm.pid).is_running()  # the same warm process all along: one import
    finally:
        warm.close()
    assert not psutil.pid_exists(warm.pid) or psutil.Process(warm.pid).status() == psutil.STATUS_ZOMBIE


def _warm_process_of(task: psutil.Process) -> psutil.Process:
    parent = task.parent()
    assert warm_protocol.MODULE in parent.cmdline(), parent.cmdline()
    return parent


@pytest.mark.parametrize("isolation", ["auto", "off"])
def test_a_forked_task_looks_and_restarts_like_a_cold_one(runner, tmp_path, isolation):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000",
                          "--isolation", isolation)
    wait_for(lambda: logged_step(model_dir / "logs" / "worker-0.log") >= 0, what="the worker's first step")
    tasks = launch.tasks()
    assert set(tasks) == {"chief:0", "worker:0", "ps:0"}
    warm = {name: _warm_process_of(proc).pid for name, proc in tasks.items()}
    assert len(set(warm.values())) == 1
    for name, proc in tasks.items():
        # Its own command line and environment, as /proc shows them (what ps and the watchdog read).
        assert proc.cmdline()[1:3] == ["-m", "launcher.task"] and f"--model_dir={model_dir}" in proc.cmdline()
        assert tf_config.task_of(proc.environ()).name == name
        assert os.getpgid(proc.pid) == os.getsid(proc.pid) == proc.pid
    worker = tasks["worker:0"]
    killed = time.time()
    worker.send_signal(signal.SIGKILL)
    new = wait_for(lambda: (w := launch.tasks().get("worker:0")) and w.pid != worker.pid and w,
                   what="the restarted worker")
    assert _warm_process_of(new).pid == warm["worker:0"]  # forked again: no new import
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait() == 143, launch.stderr
    worker_record = next(t for t in last_run(model_dir)["tasks"] if t["job"] == "worker")
    assert worker_record["exit_codes"][0] == -signal.SIGKILL and worker_record["restarts"] == 1
    assert worker_record["attempts"][1]["started"] >= killed
    wait_for(lambda: not psutil.pid_exists(warm["chief:0"]), timeout=10, what="the warm process's end")


def test_a_stopped_warm_process_is_asked_nothing_more_and_restarts_start_cold(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000")
    worker_log = model_dir / "logs" / "worker-0.log"
    wait_for(lambda: logged_step(worker_log) >= 0, what="the worker's first step")
    tasks = launch.tasks()
    warm = _warm_process_of(tasks["worker:0"])
    warm.suspend()
    try:
        killed = time.monotonic()
        tasks["worker:0"].kill()
        # Its warm process reports nothing: the launcher saw the worker end by itself, waited ANSWER_SECS for
        # the report, and started the worker cold, asking that warm process nothing more.
        new = wait_for(lambda: (w := launch.tasks().get("worker:0")) and w.pid != tasks["worker:0"].pid and w,
                       timeout=warm_protocol.ANSWER_SECS + 60, what="the restarted worker")
        assert time.monotonic() - killed >= warm_protocol.ANSWER_SECS
        assert new.ppid() == launch.proc.pid  # started by the launcher itself
        wait_for(lambda: "step = " in worker_log.read_text().split("attempt 2", 1)[-1], timeout=120,
                 what="the cold worker's first step")
    finally:
        warm.resume()
    # Woken up, it finds the request's client gone: it forks no second worker:0 for it.
    time.sleep(1.0)
    assert {p.pid for p in warm.children()} == {tasks["chief:0"].pid, tasks["ps:0"].pid}
    assert launch.tasks()["worker:0"].pid == new.pid
    cold = [line for line in launch.stderr.splitlines() if "starts cold" in line]
    assert len(cold) == 1 and "worker:0" in cold[0] and "stopped or stuck" in cold[0], cold
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait() == 143, launch.stderr


def test_a_request_a_stopped_warm_process_never_answers_is_not_forked_when_it_wakes(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(warm_protocol, "ANSWER_SECS", 1.0)
    env = {**runner.env(), "PYTHONUNBUFFERED": "1", "TF_USE_LEGACY_KERAS": "1"}
    warm = WarmProcess(WarmOptions("models.draws", env))
    try:
        assert warm.wait_ready() is None
        process = psutil.Process(warm.pid)
        port = portpicker.pick_unused_port()
        task_env = {**env, tf_config.ENV_VAR: tf_config.build({"chief": [f"localhost:{port}"]}, TaskId("chief", 0))}
        process.suspend()
        try:
            with pytest.raises(StartCold, match=r"did not answer within 1s \(stopped or stuck\)"):
                warm.start(_chief_argv(tmp_path / "model", 4), task_env, lambda line: None)
        finally:
            process.resume()
        # Awake, it reads the request and finds that nobody waits for its answer any more: no fork (one would
        # die at its first write to the closed output pipe, but live until then).
        forked = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            forked += process.children()
            time.sleep(0.005)
        assert process.is_running() and forked == []
        with pytest.raises(StartCold, match="did not answer"):  # asked nothing more: no second wait
            warm.start(_chief_argv(tmp_path / "model", 4), task_env, lambda line: None)
        assert process.children() == []
    finally:
        warm.close()


def test_a_launcher_killed_takes_its_warm_process_and_tasks_along(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 0, what="the chief's first step")
    tasks = launch.tasks()
    warm = _warm_process_of(tasks["chief:0"])
    socket_dir = os.path.dirname(next(a for a in warm.cmdline() if a.startswith("--socket=")).split("=", 1)[1])
    assert os.path.isdir(socket_dir)
    os.killpg(launch.proc.pid, signal.SIGKILL)
    launch.proc.wait()
    wait_for(lambda: not warm.is_running() or warm.status() == psutil.STATUS_ZOMBIE, timeout=10,
             what="the warm process's end")
    wait_for(lambda: not runner.leftovers(), timeout=60, what="every task's end")
    assert not os.path.exists(socket_dir), "the warm process's socket was left behind"


def test_no_fork_from_a_process_with_threads_of_its_model(runner, tmp_path):
    """A model module that starts a thread at import makes forks unsafe: every task starts cold, said once."""
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "20",
                        "--model", "models.threaded_import")
    assert launch.proc.returncode == 0, launch.stderr
    cold = [line for line in launch.stderr.splitlines() if "starts cold" in line]
    assert len(cold) == 1 and "threads" in cold[0], launch.stderr
    assert checkpoint_steps(model_dir)[-1] == 20


def test_a_cold_task_freezes_what_its_imports_made(runner, tmp_path):
    port = portpicker.pick_unused_port()
    env = {**runner.env(), tf_config.ENV_VAR: tf_config.build({"chief": [f"localhost:{port}"]}, TaskId("chief", 0))}
    done = subprocess.run(_chief_argv(tmp_path / "model", 4), env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    enabled, frozen = _gc_state(done.stdout.splitlines())
    assert enabled and frozen > IMPORTS_FROZEN, (enabled, frozen)


def test_cold_starts_on_request(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "1000000",
                          "--nowarm_starts")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 0, what="the chief's first step")
    tasks = launch.tasks()
    assert set(tasks) == {"chief:0", "worker:0", "ps:0"}
    assert all(proc.ppid() == launch.proc.pid for proc in tasks.values())  # started by the launcher itself
    assert not [p for p in runner.leftovers() if warm_protocol.MODULE in p.cmdline()]
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait() == 143, launch.stderr
