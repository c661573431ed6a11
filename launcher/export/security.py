"""What an exported cluster exposes, said where the user reads the export: its servers are open to its network.

TensorFlow's gRPC server has no authentication and binds to every interface of its host; the cluster must
reach its peers across machines, so these ports cannot be hidden as a local run's are (see
`launch.isolation`). The note goes to stderr, so that stdout stays the JSON that other tools read.
"""

from __future__ import annotations

from launcher.cluster.spec import ClusterSpec


def _lines(where: str) -> list[str]:
    return [
        "Security: TensorFlow's gRPC servers have no authentication and listen on every interface.",
        f"Anyone who can connect to {where} can run TensorFlow ops in that task:",
        "read and write files and run code as the task's user, and read or change the model's variables.",
        "Run them on a private network only: nothing else may reach these ports (firewall, NetworkPolicy).",
    ]


def note_for_hosts(spec: ClusterSpec) -> str:
    """For TF_CONFIG commands: the host:port of every server they start (the evaluator has none)."""
    addresses = ", ".join(str(spec.address(t)) for t in spec.tasks() if t.job != "evaluator")
    return "\n".join(f"# {line}" for line in _lines(addresses))


def note_for_run(spec: ClusterSpec) -> str:
    """For a run whose tasks cannot be isolated (Ray: tasks talk across nodes): the same note, one line."""
    addresses = ", ".join(str(spec.address(t)) for t in spec.tasks() if t.job != "evaluator")
    return "note: " + " ".join(_lines(addresses))


def note_for_pods(port: int) -> str:
    """For a TFJob: every training pod's port."""
    return "\n".join(f"# {line}" for line in _lines(f"port {port} of this job's pods (the pod network)"))


def note_for_slurm() -> str:
    """For a batch script: the ports are picked on the allocation's nodes when the job starts."""
    return "\n".join(f"# {line}" for line in _lines("the ports this job's tasks listen on (picked on its nodes at "
                                                      "start, named in run.json)"))
