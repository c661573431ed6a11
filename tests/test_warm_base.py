"""A warm base: TensorFlow imported once for every run on the machine, each run's warm process forked from it.

The other tests' local runs use their worker's warm base too (conftest.warm_base); these check what the
base itself promises: the fork is the run's warm process (its namespace, its directory, its modules),
edits between runs take effect, what it will not serve gets a warm process of its own and one line, and a
killed launcher takes its fork along while the base serves on.
"""

import os
import shutil
import signal
import socket
import tempfile

import psutil

import conftest
from conftest import last_run, logged_step, wait_for
from launcher.cluster import warm_protocol

REFUSED = "will not start this run's warm process"

MODEL = '''
from launcher.models import linear
from launcher.task import flags


def build(mode):
    with open(flags.MODEL_DIR.value + "/version.txt", "w") as f:
        f.write({version!r})
    return linear.build(mode)
'''


def test_a_run_s_warm_process_is_a_fork_of_the_base_in_the_run_s_namespace(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", "--chief_flags=--step_sleep_secs=0.02")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 0, what="the chief's first step")
    tasks = launch.tasks()
    assert sorted(tasks) == ["chief:0", "ps:0", "worker:0"], tasks
    warm = tasks["chief:0"].parent()
    assert warm.ppid() == conftest._warm_base.proc.pid, "the run's warm process is not the base's fork"
    assert warm.cmdline()[1:3] == ["-m", "launcher.task.warm"]  # it shows itself as a started one does
    own_namespace = os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{warm.pid}/ns/net") == os.readlink(f"/proc/{tasks['chief:0'].pid}/ns/net")
    assert os.readlink(f"/proc/{warm.pid}/ns/net") != own_namespace  # the run's isolation holds
    assert warm.cwd() == str(tmp_path)
    launch.proc.send_signal(signal.SIGTERM)
    assert launch.wait(60) == 128 + signal.SIGTERM, launch.stderr
    assert REFUSED not in launch.stderr
    wait_for(lambda: not psutil.pid_exists(warm.pid) or warm.status() == psutil.STATUS_ZOMBIE, timeout=15,
             what="the warm process's end")


def test_an_edited_model_takes_effect_in_the_next_run(runner, tmp_path):
    """The base holds TensorFlow only: the model module (here in the run's directory) and the launcher's
    modules are imported afresh by each fork."""
    model = tmp_path / "edited_model.py"
    for version in ("first", "second, edited"):
        model.write_text(MODEL.format(version=version))
        model_dir = tmp_path / version.split(",")[0]
        launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--model", "edited_model",
                            "--train_steps", "20")
        assert launch.proc.returncode == 0, launch.stderr
        assert REFUSED not in launch.stderr
        assert (model_dir / "version.txt").read_text() == version


def test_a_run_with_another_import_environment_gets_a_warm_process_of_its_own(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--train_steps", "30",
                        prefix=("env", "TF_CPP_MIN_LOG_LEVEL=2"))
    assert launch.proc.returncode == 0, launch.stderr
    said = [line for line in launch.stderr.splitlines() if REFUSED in line]
    assert len(said) == 1 and "imported TensorFlow with another TF_CPP_MIN_LOG_LEVEL" in said[0], launch.stderr
    assert last_run(model_dir)["global_step_end"] == 30


def test_the_base_forks_only_warm_processes(runner):
    base = conftest._warm_base  # the worker's base, started for `runner`
    read, write = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, warm_protocol.SOCKET_TYPE) as connection:
            connection.connect(base.socket)
            request = {"argv": [os.path.realpath("/bin/sh"), "-c", "echo owned"], "env": {}, "cwd": "/"}
            warm_protocol.send(connection, request, [read, write])
            answer, _ = warm_protocol.receive(connection)
    finally:
        os.close(read)
        os.close(write)
    assert "is not a warm process" in answer["cold"], answer
    assert base.proc.poll() is None


def test_a_killed_launcher_takes_its_fork_along_and_the_base_serves_on(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.start("run", "--spec", "local2", "--model_dir", str(model_dir), "--model", "models.probe",
                          "--train_steps", "100000", "--chief_flags=--step_sleep_secs=0.02")
    wait_for(lambda: logged_step(model_dir / "logs" / "chief-0.log") >= 0, what="the chief's first step")
    warm = launch.tasks()["chief:0"].parent()
    os.killpg(launch.proc.pid, signal.SIGKILL)
    launch.proc.wait()
    wait_for(lambda: not psutil.pid_exists(warm.pid), timeout=15, what="the warm process's end (reaped by the base)")
    wait_for(lambda: not runner.leftovers(), timeout=60, what="every task's end")
    again = runner.run("run", "--spec", "local1", "--model_dir", str(tmp_path / "again"), "--train_steps", "10")
    assert again.proc.returncode == 0 and REFUSED not in again.stderr, again.stderr


IMPOSTOR = """
import os, socket, sys
os.setuid(65534)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
listener.bind(sys.argv[1])
listener.listen(1)
print("listening", flush=True)
connection, _ = listener.accept()
data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 8)
print(f"received {len(data)} bytes, {len(fds)} descriptors", flush=True)
"""


def test_a_socket_of_another_user_gets_no_pipes():
    """A base socket put where the launcher looks by another user (a shared /tmp) is never handed anything."""
    import subprocess
    import sys

    import pytest

    from launcher.launch.backends.warm import StartCold, _FromBase

    if os.geteuid() != 0:
        pytest.skip("needs root to listen as another user")
    shared = tempfile.mkdtemp(prefix="shared-", dir="/tmp")  # the test's own directory is root's alone
    os.chmod(shared, 0o777)
    path = os.path.join(shared, "base.sock")
    impostor = subprocess.Popen([sys.executable, "-c", IMPOSTOR, path], stdout=subprocess.PIPE, text=True)
    try:
        assert impostor.stdout.readline().strip() == "listening"
        with pytest.raises(StartCold, match="runs as uid 65534, not as this user"):
            _FromBase(path, [sys.executable, "-m", warm_protocol.MODULE], {}, [])
        assert impostor.wait(10) == 0
        assert impostor.stdout.read().strip() == "received 0 bytes, 0 descriptors"
    finally:
        impostor.kill()
        impostor.wait()
        shutil.rmtree(shared)


OWN_NAMESPACE = """
import ctypes, os
from launcher.task.warm import base
fd = os.open("/proc/self/ns/net", os.O_RDONLY)
os.setuid(65534)
print("setns:", os.strerror(ctypes.get_errno()) if ctypes.CDLL(None, use_errno=True).setns(fd, 0) else "joined")
base._enter(fd)
print("entered")
"""


def test_a_fork_for_a_ray_node_in_the_base_s_own_namespace_joins_nothing():
    """A Ray node's warm process is asked for with the node's namespace, which may be the base's own: a base
    of an ordinary user (no privilege to setns at all) forks it there all the same."""
    import subprocess
    import sys

    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root to become another user")
    done = subprocess.run([sys.executable, "-c", OWN_NAMESPACE], capture_output=True, text=True, timeout=60,
                          env=conftest.tests_env(), cwd=conftest.REPO)
    assert done.stdout.splitlines() == ["setns: Operation not permitted", "entered"], done.stderr[-2000:]
