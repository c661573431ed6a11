"""Elastic membership, the task side (docs/elastic.md): real task processes run by TF_CONFIG alone, as the
`tf_config` export runs them, change a running cluster without restarting anyone else.

- a worker joins (its TF_CONFIG names one worker more than the others'), trains, and leaves (SIGUSR2);
- the chief moves to another port (the others are told nothing) and joins the ps's live variables;
- a ps moves to another port: only it restarts; the others learn its address from the membership file and
  re-create their sessions.
In each, exactly --train_steps updates reach the variables, and the ps ends after the chief's final save.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import portpicker
import pytest

from conftest import REPO, TESTS, checkpoint_steps, read_variables, wait_for
from launcher.cluster import status
from launcher.launch.run import publish_cluster

TRAIN_STEPS = 400
SLOW_SECS = "0.25"  # per step while the test changes the cluster: the run stays short of its target


class Task:
    """One `python -m launcher.task` process, its output (status lines included) in a file."""

    def __init__(self, tmp_path: pathlib.Path, name: str, cluster: dict, job: str, index: int, *flags: str):
        self.name = name
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": index}})}
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "launcher.task", *flags], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def events(self, kind: str) -> list[dict]:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [s for s in map(status.parse, lines) if s and s["event"] == kind]

    def wait(self, timeout: float) -> int:
        """The exit code; on a timeout, the task's stacks (SIGQUIT, see task_env.STACKS_SIGNAL) and a failure."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGQUIT)
            time.sleep(2)
            pytest.fail(f"{self.name} did not end by itself:\n{self.text()[-6000:]}")

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def cluster_run(tmp_path):
    started: list[Task] = []
    model_dir = tmp_path / "model"
    pace = tmp_path / "pace"
    pace.write_text(SLOW_SECS)

    def start(name: str, cluster: dict, job: str, index: int, *extra: str) -> Task:
        task = Task(tmp_path, name, cluster, job, index, "--model=models.paced", f"--model_dir={model_dir}",
                    f"--train_steps={TRAIN_STEPS}", "--save_checkpoint_steps=50", "--max_to_keep=100", f"--pace_file={pace}",
                    *extra)
        started.append(task)
        return task

    start.model_dir, start.pace = model_dir, pace
    yield start
    for task in started:
        task.stop()


def _ports(n: int) -> list[str]:
    return [f"localhost:{portpicker.pick_unused_port()}" for _ in range(n)]


def _step(task: Task) -> int:
    return max((e["step"] for e in task.events(status.PROGRESS)), default=-1)


def _local_steps(task: Task) -> int:
    return max((e.get("local_steps", 0) for e in task.events(status.PROGRESS) + task.events(status.DONE)),
               default=0)


def _finish(start, tasks: list[Task], timeout: float = 240) -> None:
    """Full speed to the target; every task ends by itself, exit 0."""
    start.pace.write_text("0")
    for task in tasks:
        task.wait(timeout)
        assert task.proc.returncode == 0, f"{task.name} exit {task.proc.returncode}:\n{task.text()[-3000:]}"


def _exact_updates(model_dir: pathlib.Path, ps: Task, lost: int = 0) -> None:
    """`lost`: updates a restored checkpoint lacks (see the moved ps)."""
    assert checkpoint_steps(model_dir)[-1] == TRAIN_STEPS
    variables = read_variables(model_dir)
    assert variables["global_step"] == TRAIN_STEPS
    # Exactly the target's updates, whoever trained them.
    assert variables["applied_updates"] == TRAIN_STEPS - lost
    assert "the chief has saved the final checkpoint" in ps.text()
    final_save = (model_dir / f"model.ckpt-{TRAIN_STEPS}.index").stat().st_mtime
    assert ps.log.stat().st_mtime >= final_save


def test_a_worker_joins_and_leaves_a_running_cluster(cluster_run):
    chief, ps, worker0, worker1 = _ports(4)
    boot = {"chief": [chief], "ps": [ps], "worker": [worker0]}
    tasks = [cluster_run("ps-0", boot, "ps", 0), cluster_run("chief-0", boot, "chief", 0),
             cluster_run("worker-0", boot, "worker", 0)]
    pids = [t.proc.pid for t in tasks]
    wait_for(lambda: _step(tasks[1]) >= 1, timeout=180, what="the chief's first steps")

    # Worker 1's TF_CONFIG names it; nobody else's does.
    joined = cluster_run("worker-1", {**boot, "worker": [worker0, worker1]}, "worker", 1)
    wait_for(lambda: _local_steps(joined) >= 5, timeout=180, what="the joined worker's training steps")
    first = joined.events(status.SESSION)[0]["step"]
    assert first > 0, "the joined worker must start from the cluster's progress, not from 0"
    assert _step(tasks[1]) < TRAIN_STEPS

    joined.proc.send_signal(signal.SIGUSR2)  # leave: finish the step in progress, exit 0
    assert joined.wait(60) == 0, joined.text()[-3000:]
    assert joined.events(status.DONE) and _local_steps(joined) >= 5
    assert _step(tasks[1]) < TRAIN_STEPS, "the run must still be training when the worker has left"

    _finish(cluster_run, tasks)
    assert [t.proc.pid for t in tasks] == pids
    for task in tasks[1:]:  # chief and worker 0 kept their first session: nothing was restarted
        assert len(task.events(status.SESSION)) == 1, task.text()[-3000:]
    assert "every current worker is done" in tasks[1].text()
    _exact_updates(cluster_run.model_dir, tasks[0])


def test_a_moved_chief_joins_the_live_variables_and_a_moved_ps_restarts_alone(cluster_run):
    chief, chief2, ps, ps2, worker0 = _ports(5)
    boot = {"chief": [chief], "ps": [ps], "worker": [worker0]}
    ps_task, chief_task = cluster_run("ps-0", boot, "ps", 0), cluster_run("chief-0", boot, "chief", 0)
    worker = cluster_run("worker-0", boot, "worker", 0)
    wait_for(lambda: _step(worker) >= 10 and checkpoint_steps(cluster_run.model_dir), timeout=180,
             what="training and a first checkpoint")

    # The chief moves: killed, started again elsewhere; the worker and the ps are told nothing.
    chief_task.stop()
    moved = {**boot, "chief": [chief2]}
    before = _step(worker)
    new_chief = cluster_run("chief-0-moved", moved, "chief", 0)
    wait_for(lambda: _local_steps(new_chief) >= 3, timeout=180, what="the moved chief's training steps")
    assert "joining them instead of restoring" in new_chief.text(), new_chief.text()[-3000:]
    assert new_chief.events(status.SESSION)[0]["step"] >= before  # nothing rolled back
    assert len(worker.events(status.SESSION)) == 1

    # A ps moves: only it restarts; the others learn its address from the membership file.
    wait_for(lambda: checkpoint_steps(cluster_run.model_dir)[-1] >= 50, timeout=180, what="a checkpoint")
    ps_task.stop()
    # The checkpoints as the ps left them: the chief restores the newest, then saves it again under the same
    # name, and that second save may catch a worker's step half-way (its global step without its update).
    # Copied once the chief has seen the ps go (its save in flight has then ended), before a new ps exists.
    wait_for(lambda: len(new_chief.events(status.NO_SESSION)) >= 2, timeout=120, what="the chief to lose the ps")
    at_loss = cluster_run.model_dir.parent / "checkpoints-at-ps-loss"
    at_loss.mkdir()
    for path in cluster_run.model_dir.glob("model.ckpt-*"):
        shutil.copy2(path, at_loss / path.name)
    final = {**moved, "ps": [ps2]}
    publish_cluster(str(cluster_run.model_dir), final)  # what the launcher does when an address changes
    new_ps = cluster_run("ps-0-moved", final, "ps", 0)
    wait_for(lambda: len(worker.events(status.SESSION)) >= 2 and len(new_chief.events(status.SESSION)) >= 2,
             timeout=240, what="sessions re-created with the moved ps")
    assert worker.proc.poll() is None and new_chief.proc.poll() is None
    # A checkpoint saved while a worker trains may hold a ticket whose update was still on its way (the
    # saver reads the variables one by one): restored, that update is lost for good. Every other update is
    # there: exactly one per step from the restored step on. (Read from the copy made at the loss.)
    restored = re.findall(r"restoring (\S+)", new_chief.text())[-1]
    snapshot = read_variables(at_loss, int(restored.rsplit("-", 1)[1]))

    _finish(cluster_run, [new_ps, new_chief, worker])
    _exact_updates(cluster_run.model_dir, new_ps, lost=snapshot["global_step"] - snapshot["applied_updates"])


# --- the membership file, read by a task (in a subprocess: the test process stays free of TensorFlow) ----------

_READ = """
import os, time
from launcher.cluster.spec import TaskId
from launcher.task.membership import Membership
model_dir, started = sys.argv[1], float(sys.argv[2])
m = Membership(TaskId("worker", 1), {"chief": ["c:1"], "ps": ["p:1"], "worker": ["w:0", "w:1"]}, model_dir,
               started=started)
config = m.session_config()
print(json.dumps({"cluster": m.cluster(), "session": m.session_cluster(), "peers": m.variables_peers(),
                  "filters": list(config.device_filters),
                  "shared": config.experimental.share_session_state_in_clusterspec_propagation}))
"""


@pytest.mark.parametrize("content, believed", [
    ({"cluster": {"chief": ["c:2"], "ps": ["p:2"], "worker": ["x:9", "w:1"]}}, True),
    ({"cluster": {"chief": ["c:2"], "ps": ["p:2", "p:3"]}}, False),   # the number of ps is fixed for a run
    ({"cluster": {"chief": ["c:2"], "ps": ["p:2"], "evil": ["e:1"]}}, False),
    ({"cluster": {"ps": ["p:2"]}}, False),                             # the chief is gone
    ({"cluster": {"chief": ["c:2"], "ps": [7]}}, False),
    (["not", "an", "object"], False),
])
def test_a_task_believes_a_newer_valid_membership_file_only(tmp_path, content, believed):
    from conftest import run_with_tf

    (tmp_path / ".cluster.json").write_text(json.dumps(content))
    seen = run_with_tf(_READ, str(tmp_path), "0")
    assert seen["peers"] == (["p:2"] if believed else ["p:1"])
    # Its own address is its own TF_CONFIG's, whatever the file says; it sees the ps and itself only.
    assert seen["session"] == {"ps": {"0": seen["peers"][0]}, "worker": {"1": "w:1"}}
    assert seen["filters"] == ["/job:ps/task:0", "/job:worker/task:1"] and seen["shared"] is True


def test_a_task_started_anew_elsewhere_stops_before_its_next_session(tmp_path):
    """The orphan of a moved worker (its host declared lost, then back) must make no session: the ps would drop
    the sessions of the worker that replaced it (see Membership.replaced_by)."""
    from conftest import run_with_tf_process

    (tmp_path / ".cluster.json").write_text(json.dumps({"cluster": {"chief": ["c:1"], "ps": ["p:1"],
                                                                    "worker": ["w:0", "x:9"]}}))
    proc = run_with_tf_process(_READ, str(tmp_path), "0")
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "worker:1 was started anew at x:9 (.cluster.json): this process stops without saving" in proc.stderr
    assert proc.stdout == ""  # no session config was made


def test_a_membership_file_older_than_the_task_is_ignored(tmp_path):
    from conftest import run_with_tf

    (tmp_path / ".cluster.json").write_text(json.dumps({"cluster": {"chief": ["c:2"], "ps": ["p:2"]}}))
    seen = run_with_tf(_READ, str(tmp_path), str(time.time() + 60))  # the task started after the file
    assert seen["peers"] == ["p:1"]


_MOVES = """
import os, pathlib, time
from launcher.cluster.spec import TaskId
from launcher.task import membership
membership.LOOK_SECS = 0.0
path = pathlib.Path(sys.argv[1]) / ".cluster.json"
m = membership.Membership(TaskId("worker", 1), {"chief": ["c:1"], "ps": ["p:1", "q:1"], "worker": ["w:0", "w:1"]},
                          sys.argv[1], started=0)
seen = {"before any session": m.variables_moved()}
m.session_config()
seen["no change"] = m.variables_moved()
path.write_text(json.dumps({"cluster": {"chief": ["c:2"], "ps": ["p:1", "q:1"], "worker": ["w:0", "w:1", "x:9"]}}))
seen["the chief and a worker moved"] = m.variables_moved()  # neither is in a worker's session with ps
path.write_text(json.dumps({"cluster": {"chief": ["c:2"], "ps": ["p:1", "q:2"], "worker": ["w:0", "w:1"]}}))
os.utime(path, (time.time() + 1, time.time() + 1))  # a newer file, whatever the file system's clock tick
seen["a ps moved"] = m.variables_moved()
m.session_config()
seen["after a new session"] = m.variables_moved()
print(json.dumps(seen))
"""


def test_a_task_notices_when_the_variables_it_trains_on_moved(tmp_path):
    """A moved ps's old process may serve on (a host cut off, declared dead, back again): a task whose session
    still uses it must leave that session by itself (Membership.variables_moved, checked before each step)."""
    from conftest import run_with_tf

    seen = run_with_tf(_MOVES, str(tmp_path))
    assert seen == {"before any session": False, "no change": False, "the chief and a worker moved": False,
                    "a ps moved": True, "after a new session": False}
