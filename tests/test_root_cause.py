"""Failures name their root cause, caused for real: a full disk, a user model that raises, a port taken,
the kernel's OOM killer; and the console shows the error once, not its tracebacks."""

import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import psutil
import pytest

from conftest import checkpoint_steps, last_run, wait_for
from test_hang import task_pids
from launcher.cluster import warm_protocol

SLOW = "--step_sleep_secs=0.02"


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs, unmounted in teardown whatever happens."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def _fill(directory: pathlib.Path, leave: int) -> None:
    """Fill the filesystem of `directory`, then give `leave` bytes back (for the logs to go on)."""
    path = directory / "filler"
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    os.truncate(path, max(path.stat().st_size - leave, 0))


def test_disk_full_names_no_space_and_the_path_once(runner, small_disk):
    model_dir = small_disk / "model"
    launch = runner.start("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.hang",
                          "--train_steps", "100000", "--max_restarts", "0",
                          f"--chief_flags={SLOW} --save_checkpoint_steps=20")
    wait_for(lambda: checkpoint_steps(model_dir), what="a first checkpoint")
    _fill(small_disk, leave=64 * 1024)
    assert launch.wait(300) == 1, launch.stderr
    err = launch.stderr
    assert "chief:0 exited 1 (training failed): no space left on device writing " + str(model_dir) in err, err
    assert "chief-0.log" in err
    # The error reaches the console once; the tracebacks stay in the log.
    assert "Traceback" not in launch.stdout and "Original stack trace" not in launch.stdout
    from_task = [line for line in launch.stdout.splitlines() if line.startswith("[chief:0]")]
    assert sum("No space left on device" in line for line in from_task) == 1, launch.stdout


def test_exception_in_the_user_model_names_its_frame(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.hang",
                        "--chief_flags=--fail_on=chief:0")
    assert launch.proc.returncode == 1, launch.stderr
    err = launch.stderr
    assert "chief:0 exited 1 (training failed): RuntimeError: hang model told to fail on chief:0" in err, err
    assert "hang.py:" in err and "in build: raise RuntimeError" in err, err
    assert "Traceback" not in launch.stdout and "Traceback" not in err


def test_port_taken_by_another_process_is_named(runner, tmp_path):
    model_dir = tmp_path / "model"
    # Without network isolation: in a namespace of the run's own, nothing else could hold its ports.
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.hang",
                          "--train_steps", "100000", "--isolation", "off",
                          f"--chief_flags={SLOW} --save_checkpoint_steps=20", f"--worker_flags={SLOW}",
                          "--ps_flags=--recovery_deadline_secs=60",
                          # The chief cannot save (its ps is gone): a short grace ends its wait.
                          "--grace_secs=5")
    wait_for(lambda: checkpoint_steps(model_dir), what="a first checkpoint")
    ps = task_pids(launch)["ps:0"]
    port = int(json.loads(psutil.Process(ps).environ()["TF_CONFIG"])["cluster"]["ps"][0].rsplit(":", 1)[1])
    # The restarted ps is forked within a fraction of a second: its warm process is held still until the
    # port is ours (it then reports the kill and forks the restart).
    warm = psutil.Process(ps).parent()
    assert warm_protocol.MODULE in warm.cmdline(), warm.cmdline()
    holder = socket.socket()
    try:
        warm.suspend()
        try:
            os.kill(ps, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while True:
                try:
                    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    holder.bind(("localhost", port))
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        finally:
            warm.resume()
        holder.listen()
        assert launch.wait(300) == 1, launch.stderr
    finally:
        holder.close()
    assert f"ps:0 exited 1 (training failed): its port localhost:{port} is taken by another process" \
        in launch.stderr, launch.stderr


def _memory_cgroup():
    """A new memory cgroup (v2 `memory.max`, else v1 `memory.limit_in_bytes`) as (dir, limit file, undo), or a
    skip; `undo` turns off what was turned on for it (the memory controller of the parent's children)."""
    v2_root = pathlib.Path("/sys/fs/cgroup")
    for root in (v2_root, v2_root / "unified"):
        controllers = root / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            subtree = root / "cgroup.subtree_control"
            undo = None
            if "memory" not in subtree.read_text().split():
                subtree.write_text("+memory")
                undo = lambda: subtree.write_text("-memory")  # noqa: E731
            path = root / f"launcher-test-{os.getpid()}"
            path.mkdir()
            return path, "memory.max", undo
    own = next((line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup") if ":memory:" in line), None)
    v1 = v2_root / "memory"
    if own is not None and (v1 / own.lstrip("/")).is_dir():
        path = v1 / own.lstrip("/") / f"launcher-test-{os.getpid()}"
        try:
            path.mkdir()
            return path, "memory.limit_in_bytes", None
        except OSError as e:
            pytest.skip(f"cannot create a v1 memory cgroup here: {e.strerror}")
    pytest.skip("no cgroup v2 memory controller and no writable v1 memory hierarchy here")


@pytest.fixture
def memory_cgroup():
    path, limit_file, undo = _memory_cgroup()
    try:
        yield path, limit_file
    finally:
        parent = path.parent / "cgroup.procs"
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                parent.write_text(pid)
            except OSError:
                pass
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)
        if undo is not None:
            undo()  # the machine's cgroups as they were: fails loudly if something else took them up since


def test_oom_kill_is_named(runner, tmp_path, memory_cgroup):
    cgroup, limit_file = memory_cgroup
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "models.hang",
                          "--train_steps", "100000", "--max_restarts", "0",
                          f"--chief_flags={SLOW} --grow_on=chief:0 --save_checkpoint_steps=20")
    wait_for(lambda: checkpoint_steps(model_dir), what="a first checkpoint")
    (cgroup / limit_file).write_text(str(128 << 20))  # on top of what it had before: it grows 8 MiB a step
    (cgroup / "cgroup.procs").write_text(str(task_pids(launch)["chief:0"]))
    time.sleep(2)  # the launcher notes each task's cgroup twice a second
    (model_dir / "grow").touch()
    assert launch.wait(300) == 1, launch.stderr
    assert "chief:0 killed by SIGKILL: killed by the kernel's OOM killer: out of memory (cgroup " \
        + str(cgroup) in launch.stderr, launch.stderr
