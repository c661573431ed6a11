"""The floor: N bare processes that only import TensorFlow and start a server of the spec's cluster.

No launcher can start its tasks faster than that, so it is the yardstick for the launcher's start-up
and for a restarted task's recovery.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from typing import Optional

from bench.processes import kill_all, start
from bench.trials import BenchmarkError
from launcher.launch import ports
from launcher.cluster import spec as spec_lib

# A floor process: nothing but the TensorFlow import and a server, as a task does before training.
FLOOR_PROGRAM = """\
import json, sys, time
import tensorflow as tf
tf.distribute.Server(tf.train.ClusterSpec(json.loads(sys.argv[1])), job_name=sys.argv[2],
                     task_index=int(sys.argv[3]), start=True)
print("ready", flush=True)
time.sleep(3600)
"""


@dataclasses.dataclass
class FloorResult:
    spec: str
    processes: int
    ready_secs: float


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
