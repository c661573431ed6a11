"""Per-step cost of the launcher's train op against a plain `minimize`, in one process, no cluster.

For each model (default launcher.models.mlp, whose batch norm brings UPDATE_OPS, and launcher.models.linear,
where a step is so cheap that any fixed overhead shows) two graphs are built from the same build("train"):

- plain: `optimizer.minimize(loss, global_step)` under a control dependency on UPDATE_OPS, what a single
  process would run;
- capped: `launcher.task.train_op.capped`, the ticket under a CriticalSection, the tf.cond and the update ops.

With --cluster both run as between-graph replication does: a ps and a worker `tf.distribute.Server` in this
process, variables on the ps (`replica_device_setter`), the session on the worker, every step over loopback
gRPC, fetching the global step as the hooks do. This is where the ticket's placement shows: a decision taken
on the worker would cost a round trip to the ps on every step.

Each is run in a bare Session (no hooks, nothing saved): --warmup steps, then --steps timed steps, in
--repeats rounds that alternate between the two so that other load on the machine hits both alike. The
table shows the median ms/step over the rounds and capped / plain.

    PYTHONPATH=. python scripts/bench_train_op.py [--steps 300] [--repeats 5] [--models launcher.models.mlp] [--cluster]
"""

from __future__ import annotations

import importlib
import statistics
import sys
import time

import portpicker

import launcher.task  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from absl import app, flags

from launcher import TRAIN
from launcher.task import train_op

STEPS = flags.DEFINE_integer("steps", 300, "Timed steps per round.")
WARMUP = flags.DEFINE_integer("warmup", 30, "Untimed steps before each round.")
REPEATS = flags.DEFINE_integer("repeats", 5, "Rounds per train op, alternating.")
MODELS = flags.DEFINE_list("models", ["launcher.models.mlp", "launcher.models.linear"], "Model modules.")
CLUSTER = flags.DEFINE_bool("cluster", False, "Variables on a ps task, steps run from a worker task.")


def _plain(model, global_step):
    with tf.control_dependencies(tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)):
        return model.optimizer.minimize(model.loss, global_step=global_step)


def _capped(model, global_step):
    return train_op.capped(model, global_step, last_step=2 ** 62)  # never reached: every step applies


class _Cluster:
    """A ps and a worker server in this process: a session on the worker reaches the ps through gRPC."""

    def __init__(self):
        self.spec = {job: [f"localhost:{portpicker.pick_unused_port()}"] for job in ("ps", "worker")}
        self.servers = [tf.distribute.Server(self.spec, job_name=job, task_index=0) for job in self.spec]
        self.target = self.servers[1].target

    def device(self):
        return tf.compat.v1.train.replica_device_setter(worker_device="/job:worker/task:0", cluster=self.spec)


class _Trial:
    """One graph and session running one kind of train op."""

    def __init__(self, build, make_op, cluster=None):
        self.graph = tf.Graph()
        with self.graph.as_default(), tf.compat.v1.device(cluster.device() if cluster else None):
            global_step = tf.compat.v1.train.get_or_create_global_step()
            # Fetched with the op, as the stock hooks (StopAtStepHook, CheckpointSaverHook) fetch it.
            self.op = [make_op(build(TRAIN), global_step), global_step]
            init = tf.compat.v1.global_variables_initializer()
        self.session = tf.compat.v1.Session(cluster.target if cluster else "", graph=self.graph)
        self.session.run(init)

    def ms_per_step(self) -> float:
        for _ in range(WARMUP.value):
            self.session.run(self.op)
        start = time.perf_counter()
        for _ in range(STEPS.value):
            self.session.run(self.op)
        return (time.perf_counter() - start) * 1000 / STEPS.value


def main(argv):
    del argv
    rows = []
    cluster = _Cluster() if CLUSTER.value else None
    for name in MODELS.value:
        build = importlib.import_module(name).build
        trials = {"plain": _Trial(build, _plain, cluster), "capped": _Trial(build, _capped, cluster)}
        times = {kind: [] for kind in trials}
        for _ in range(REPEATS.value):
            for kind, trial in trials.items():
                times[kind].append(trial.ms_per_step())
        plain, capped = (statistics.median(times[k]) for k in ("plain", "capped"))
        rows.append((name, plain, capped, capped / plain))
        for trial in trials.values():
            trial.session.close()
    where = "ps + worker over loopback gRPC" if cluster else "one process"
    print(f"{where}: {STEPS.value} steps x {REPEATS.value} rounds, median ms/step")
    print(f"{'model':<24} {'plain':>8} {'capped':>8} {'ratio':>6}")
    for name, plain, capped, ratio in rows:
        print(f"{name:<24} {plain:>8.3f} {capped:>8.3f} {ratio:>6.2f}")


if __name__ == "__main__":
    # The models' flags are defined at import: import them first so that their flags parse too.
    for module in next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--models=")),
                       MODELS.default):
        importlib.import_module(module)
    app.run(main)
