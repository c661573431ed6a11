"""Per-step cost of propagated sessions (docs/elastic.md) against the static cluster, side by side.

Two clusters of one ps and one worker, each ps its own process, the worker's server in this process:

- static: every server booted under its name in the cluster (`tf.distribute.Server(cluster, job, index)`),
  the session with device filters only: how tasks ran before elastic membership;
- propagated: every server booted under the private identity (`membership.boot_server`), the session
  carrying the cluster (`Membership.session_config`: cluster_def, shared session state, device filters):
  how tasks run now.

The same graph is run in both (variables on the ps by `replica_device_setter`, the launcher's capped train
op, the global step fetched with it as the hooks fetch it): --warmup steps, then --steps timed steps, in
--repeats rounds that alternate between the two so that other load on the machine hits both alike.
Prints steps/s per round and the median of the per-round ratios propagated / static.

    PYTHONPATH=. python scripts/bench_propagation.py [--steps 500] [--repeats 9] [--model launcher.models.linear]
"""

from __future__ import annotations

import importlib
import os
import statistics
import subprocess
import sys
import time

import portpicker

import launcher.task  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import tensorflow as tf
from absl import app, flags

from launcher import TRAIN
from launcher.cluster.spec import TaskId
from launcher.task import membership, train_op
from launcher.cluster.peers import accepts_connections

STEPS = flags.DEFINE_integer("steps", 500, "Timed steps per round.")
WARMUP = flags.DEFINE_integer("warmup", 50, "Untimed steps before each round.")
REPEATS = flags.DEFINE_integer("repeats", 9, "Rounds per cluster, alternating.")
MODEL = flags.DEFINE_string("model", "launcher.models.linear", "Model module.")

_PS = """
import sys, time, tensorflow as tf
from launcher.task import membership
mode, ps, worker = sys.argv[1:4]
if mode == "static":
    server = tf.distribute.Server({"ps": [ps], "worker": [worker]}, job_name="ps", task_index=0)
else:
    server = membership.boot_server(ps)
server.join()
"""


class _Cluster:
    def __init__(self, mode: str, build):
        self.mode = mode
        ps, worker = (f"localhost:{portpicker.pick_unused_port()}" for _ in range(2))
        spec = {"ps": [ps], "worker": [worker]}
        self.ps = subprocess.Popen([sys.executable, "-c", _PS, mode, ps, worker],
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                        "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
        if mode == "static":
            self.server = tf.distribute.Server(spec, job_name="worker", task_index=0)
            config = tf.compat.v1.ConfigProto(device_filters=["/job:ps", "/job:worker/task:0"])
        else:
            self.server = membership.boot_server(worker)
            config = membership.Membership(TaskId("worker", 0), spec, model_dir=None).session_config()
        while not accepts_connections(ps):
            time.sleep(0.2)
        self.graph = tf.Graph()
        setter = tf.compat.v1.train.replica_device_setter(worker_device="/job:worker/task:0", cluster=spec)
        with self.graph.as_default(), tf.compat.v1.device(setter):
            global_step = tf.compat.v1.train.get_or_create_global_step()
            self.op = [train_op.capped(build(TRAIN), global_step, last_step=2 ** 62), global_step]
            init = tf.compat.v1.global_variables_initializer()
        self.session = tf.compat.v1.Session(self.server.target, graph=self.graph, config=config)
        self.session.run(init)

    def steps_per_sec(self) -> float:
        for _ in range(WARMUP.value):
            self.session.run(self.op)
        start = time.perf_counter()
        for _ in range(STEPS.value):
            self.session.run(self.op)
        return STEPS.value / (time.perf_counter() - start)

    def close(self) -> None:
        self.ps.kill()
        self.ps.wait()


def main(argv):
    del argv
    build = importlib.import_module(MODEL.value).build
    clusters = [_Cluster("static", build), _Cluster("propagated", build)]
    try:
        rates = {c.mode: [] for c in clusters}
        for _ in range(REPEATS.value):
            for cluster in clusters:
                rates[cluster.mode].append(cluster.steps_per_sec())
    finally:
        for cluster in clusters:
            cluster.close()
    ratios = [p / s for s, p in zip(rates["static"], rates["propagated"])]
    print(f"{MODEL.value}: ps + worker over loopback gRPC, {STEPS.value} steps x {REPEATS.value} rounds")
    print(f"{'round':>5} {'static/s':>9} {'propagated/s':>13} {'ratio':>6}")
    for i, (s, p, r) in enumerate(zip(rates["static"], rates["propagated"], ratios)):
        print(f"{i:>5} {s:>9.1f} {p:>13.1f} {r:>6.3f}")
    print(f"median steps/s: static {statistics.median(rates['static']):.1f}, "
          f"propagated {statistics.median(rates['propagated']):.1f}; median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    importlib.import_module(next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--model=")), MODEL.default))
    app.run(main)
