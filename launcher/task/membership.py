"""Membership is data: a task's server boots under a private identity, and each session carries the cluster.

TensorFlow fixes a server's cluster when it boots (`tf.distribute.Server(cluster_spec, ...)`): with that
alone, a task could never learn a new address, nor could a worker join that the others' cluster does not
name. ClusterSpec propagation lifts this: a session created with `ConfigProto.cluster_def` brings its own
cluster to every task it touches (TensorFlow's master finds its own task in that cluster by matching the
session's target against the addresses, `master.cc`). Two conditions, both measured:

- a server must not boot under a name the propagated cluster uses ("The ClusterSpec names the job and task
  index to be the same names that were provided when the server booted"), so every server boots as
  `/job:local/task:0` with its own address only, a name no cluster of this project uses;
- the ps's variables must outlive each session and be shared between the sessions of all tasks:
  `share_session_state_in_clusterspec_propagation` makes a propagated session use the server's own
  devices (and their resources) instead of a private copy.

A session's cluster holds only the tasks it sees (the ps, or the chief that holds the variables without ps,
and the task itself), and its device filters say the same: so it never waits for a worker that is gone, and
two tasks never need to agree on the rest of the membership. A worker whose TF_CONFIG names it at index 3
joins a cluster whose other tasks name only one worker.

How a running task learns a new address (a ps or the chief moved): the launcher rewrites
`<model_dir>/.cluster.json` (`{"cluster": {job: [addresses]}}`, written to a temporary name and renamed),
and a task re-reads it each time it creates a session, and a ps each time it checks on its chief. A file
older than the task itself is ignored: the task's TF_CONFIG, written later, is newer (and a file left by an
earlier run in the same directory is never believed). See docs/elastic.md.
"""

from __future__ import annotations

import json
import os
import time
from typing import Mapping, Optional

import tensorflow as tf
from absl import logging

from launcher.cluster import exit_codes
from launcher.cluster.spec import CHIEF, PS, TRAINING_JOBS, WORKER, TaskId
from launcher.cluster.stop_signals import exit_at_once

MEMBERSHIP_FILE = ".cluster.json"
LOOK_SECS = 1.0  # how often a training task looks whether the variables' tasks moved (a stat of the file)
# The job name every server boots under: never a job of a propagated cluster.
PRIVATE_JOB = "local"


def boot_server(address: str) -> tf.distribute.Server:
    """This task's server, under the private identity: which cluster it belongs to is each session's say."""
    return tf.distribute.Server(tf.train.ClusterSpec({PRIVATE_JOB: [address]}), job_name=PRIVATE_JOB,
                                task_index=0, start=True)


def process_started() -> float:
    """When this process began (epoch seconds): a membership file written while it imported TensorFlow is
    newer than its TF_CONFIG. From /proc (Linux); elsewhere, now."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def membership_path(model_dir: str) -> str:
    return os.path.join(model_dir, MEMBERSHIP_FILE)


def _valid(cluster: object, boot: Mapping[str, list]) -> Optional[str]:
    """Why `cluster` (from the membership file) cannot be used, or None."""
    if not isinstance(cluster, dict):
        return "cluster is not an object"
    for job, addresses in cluster.items():
        if job not in TRAINING_JOBS:
            return f"unknown job {job!r}"
        if not isinstance(addresses, list) or not all(isinstance(a, str) and a.strip() for a in addresses):
            return f"{job}: not a list of addresses"
    # The graph places variables on /job:ps/task:<i> by name: the number of ps is fixed for a run.
    if len(cluster.get(PS, [])) != len(boot.get(PS, [])):
        return f"{len(cluster.get(PS, []))} ps, the run has {len(boot.get(PS, []))}"
    if bool(cluster.get(CHIEF)) != bool(boot.get(CHIEF)):
        return "the chief is missing" if boot.get(CHIEF) else "a chief the run does not have"
    return None


class Membership:
    """The live cluster as this task knows it: TF_CONFIG's, replaced by a newer membership file."""

    def __init__(self, task: TaskId, boot_cluster: Mapping[str, list], model_dir: Optional[str],
                 started: Optional[float] = None):
        self.task = task
        self._boot = {job: list(addresses) for job, addresses in boot_cluster.items()}
        self._path = membership_path(model_dir) if model_dir else None
        self._started = process_started() if started is None else started
        self._seen_mtime: Optional[float] = None
        self._cluster = self._boot
        self._session_peers: Optional[dict] = None  # what the newest session was made with, but for itself
        self._looked_at: Optional[float] = None
        self._own = self._boot[task.job][task.index] if task.job in self._boot and \
            task.index < len(self._boot[task.job]) else None

    @property
    def own_address(self) -> Optional[str]:
        return self._own

    def cluster(self) -> dict:
        """The newest cluster: the membership file's when it changed during this task's life."""
        self._refresh()
        return {job: list(addresses) for job, addresses in self._cluster.items()}

    def _refresh(self) -> None:
        if self._path is None:
            return
        try:
            mtime = tf.io.gfile.stat(self._path).mtime_nsec / 1e9
        except tf.errors.NotFoundError:
            return
        except tf.errors.OpError as e:
            logging.warning("cannot read %s (%s); keeping the cluster I know", self._path, type(e).__name__)
            return
        if mtime < self._started or mtime == self._seen_mtime:
            return  # older than this task (its TF_CONFIG is newer), or read already
        self._seen_mtime = mtime
        try:
            with tf.io.gfile.GFile(self._path) as f:
                cluster = json.load(f).get("cluster")
            problem = _valid(cluster, self._boot)
        except (ValueError, AttributeError, tf.errors.OpError) as e:
            problem = f"not a JSON object with a cluster ({type(e).__name__})"
        if problem:
            logging.warning("ignoring %s: %s", self._path, problem)
            return
        if cluster != self._cluster:
            logging.info("membership changed: %s", json.dumps(cluster, sort_keys=True))
        self._cluster = cluster

    def replaced_by(self, live: Mapping[str, list]) -> Optional[str]:
        """The address `live` (the live cluster) gives this chief or worker when it is not this process's own: the
        launcher started the task anew elsewhere (its node was declared lost), and this process is an orphan.

        Such an orphan must not make sessions: TensorFlow's ps drops every worker session of a master task
        (`/job:worker/replica:0/task:1`) when that name comes back from another process (session_mgr.cc:
        "found old WorkerSessions created by the same master task with a different incarnation"). Seen on
        the Ray bed after a host cut off for 20 s came back: the orphan and the worker that replaced it
        each killed the other's sessions with every new one, until the orphan's parent watch stopped it."""
        if self.task.job not in (CHIEF, WORKER) or self._own is None:
            return None
        addresses = live.get(self.task.job, [])
        if self.task.index < len(addresses) and addresses[self.task.index] != self._own:
            return addresses[self.task.index]
        return None

    def session_cluster(self) -> dict:
        """What a session of this task sees: where the variables live, and itself at its own address.

        An orphan (see `replaced_by`) stops here, at once and without saving: exit 143, as if preempted."""
        live = self.cluster()
        replacement = self.replaced_by(live)
        if replacement is not None:
            logging.error("%s was started anew at %s (%s): this process stops without saving", self.task,
                          replacement, MEMBERSHIP_FILE)
            exit_at_once(exit_codes.PREEMPTED)  # like every task that stops now: nothing to save or close
        jobs: dict = {}
        if self.task.job == PS:
            pass  # a ps's own session (its release queue) sees only itself
        elif live.get(PS):
            jobs[PS] = dict(enumerate(live[PS]))
        elif live.get(CHIEF):
            jobs[CHIEF] = {0: live[CHIEF][0]}
        if self._own is not None:
            jobs.setdefault(self.task.job, {})[self.task.index] = self._own
        return jobs

    def _peers(self, jobs: dict) -> dict:
        """`jobs` (a session's cluster) without this task itself."""
        return {job: {i: a for i, a in tasks.items() if (job, i) != (self.task.job, self.task.index)}
                for job, tasks in jobs.items()}

    def variables_moved(self) -> bool:
        """Whether the tasks that hold the variables (the ps, or the chief without ps) have new addresses since
        this task's newest session was made: that session still talks to the old ones. Looks at the
        membership file at most every LOOK_SECS.

        A moved ps is usually gone from its old address, and every session that used it fails and is made
        anew. But not always: seen on the Ray bed, a host cut off long enough for Ray to declare it dead came
        back, and its old ps served on (an orphan, until its parent watch stopped it). The chief and some
        workers went on training on it while another worker, whose session was newer, waited for the chief
        to make the model ready on the new ps. So a task leaves such a session itself: the chief then
        restores the newest checkpoint into the new ps, and the workers wait for it there.
        """
        now = time.monotonic()
        if self._session_peers is None or (self._looked_at is not None and now - self._looked_at < LOOK_SECS):
            return False
        self._looked_at = now
        return self._peers(self.session_cluster()) != self._session_peers

    def session_config(self) -> tf.compat.v1.ConfigProto:
        """A ConfigProto that carries this task's view of the cluster (see the module's docstring)."""
        jobs = self.session_cluster()
        self._session_peers = self._peers(jobs)
        filters = [f"/job:{job}/task:{index}" for job, tasks in sorted(jobs.items()) for index in sorted(tasks)]
        config = tf.compat.v1.ConfigProto(device_filters=filters)
        config.cluster_def.CopyFrom(tf.train.ClusterSpec(jobs).as_cluster_def())
        config.experimental.share_session_state_in_clusterspec_propagation = True
        return config

    def variables_peers(self) -> list[str]:
        """The addresses a session of this task needs up: the ps, or the chief without ps."""
        live = self.cluster()
        return list(live.get(PS) or live.get(CHIEF, [])[:1])

    def chief_address(self) -> Optional[str]:
        chief = self.cluster().get(CHIEF)
        return chief[0] if chief else None


def write(model_dir: str, cluster: Mapping[str, list]) -> str:
    """The launcher's side: publish `cluster` to the run's tasks (temporary file, then an atomic rename)."""
    path = membership_path(model_dir)
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps({"cluster": {job: list(a) for job, a in cluster.items()}}, sort_keys=True))
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return path
