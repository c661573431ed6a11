"""Tasks as job steps of the Slurm allocation that the launcher runs in (a batch script, or `salloc`).

Each task process is one step pinned to one node of the allocation (`srun --nodes=1 --ntasks=1 -w NODE
--exact`: the step takes only its own CPUs, so the steps of all tasks share the allocation side by side);
a restart is a new step. Where tasks go is planned before anything starts, as on Ray (`placement`): the
chief and workers on as many nodes as there are, the ps apart, within the CPUs Slurm gave the job on each
node. Each task's port is picked on its own node by a tiny step (`cluster.free_ports` there: below the
ephemeral range, where the node's own `srun`s cannot take it first), never counted from a fixed base, and
TF_CONFIG is built from the nodes' addresses as Slurm knows them (NodeAddr).

The launcher's handle on a task is its `srun`: its output is the task's (labelled, so that srun's own
lines, such as a node failure, are told apart from anything the task prints), its exit code the task's
(128 + the signal for a killed task). Signals go to the step itself (`scancel --signal`), so that SIGKILL and
SIGSTOP reach the task and not srun. A node that Slurm reports down or not responding is lost: its tasks
move to nodes of the allocation with room (a job submitted with `--no-kill` keeps its other nodes).
Everything Slurm-specific is here; supervision is the same as for every backend.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, Optional

from launcher.cluster import gpus as gpus_lib, settings, warm_protocol
from launcher.cluster.errors import UserError
from launcher.cluster.spec import PS, Address, ClusterSpec, TaskId
from launcher.cluster.task_env import PARENT_PID
from launcher.launch.backends import Move, PlacementError, placement as placement_lib
from launcher.launch.backends.local import LocalProcess
from launcher.launch.backends.warm import ColdReasons, WarmOptions, WarmProcess

COMMAND_SECS = 60.0  # any one Slurm command; they answer in well under a second on a live cluster
STEP_LOOKUP_SECS = 5.0  # a step appears in squeue within moments of its srun's start
# The task's parent watch (task.parent_watch) follows the process that started it on its node: slurmstepd.
# The launcher's pid means nothing on another node.
_STEP_WRAPPER = ["/bin/sh", "-c", f'{PARENT_PID}=$PPID; export {PARENT_PID}; exec "$@"', "launcher-task"]
_LOST_STATES = ("DOWN", "FAIL", "NOT_RESPONDING", "POWER", "REBOOT")
# srun's line for a task that ended badly ("srun: error: h2: task 0: Exited with exit code 1", "... Killed"):
# without one, a failed srun never heard from its task (its node gone, or the step never created).
_TASK_VERDICT = re.compile(r"^srun: error: \S+: task \d+: ")
# What srun says when the node under its step dies (and then it exits 0, as if the task had).
_NODE_FAILURE = re.compile(r"^srun: error: Node failure on ")
VERDICT_POLL_SECS = 1.0
_TASK_LABEL = "0: "  # srun --label's prefix of every line of the step's only task


def _run(argv: list[str], timeout: float = COMMAND_SECS) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]} did not answer within {timeout:g}s")


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def cpus_per_node(value: str, count: int) -> list[int]:
    """SLURM_JOB_CPUS_PER_NODE ("2(x3)", "4,2(x2)") as one number per node of the allocation."""
    cpus: list[int] = []
    for part in value.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            raise UserError(f"SLURM_JOB_CPUS_PER_NODE {value!r}: not Slurm's format (such as 2(x3))")
        cpus.extend([int(m.group(1))] * int(m.group(2) or 1))
    if len(cpus) != count:
        raise UserError(f"SLURM_JOB_CPUS_PER_NODE {value!r} names {len(cpus)} nodes, the allocation has {count}")
    return cpus


def node_lost(state: str) -> bool:
    """Whether a node in Slurm's `State` ("IDLE", "MIXED*", "DOWN*+DRAIN", "IDLE+NOT_RESPONDING") is gone
    for this job: down, failed, or not answering its controller ("*")."""
    return "*" in state or any(word in state.upper() for word in _LOST_STATES)


def step_id_of(job_id: str, name: str, running: Callable[[], bool]) -> Optional[str]:
    """JOB.STEP of the step named `name` (unique in the job), once Slurm lists it; None if it is not listed
    within STEP_LOOKUP_SECS, or as soon as `running()` says its srun has ended."""
    deadline = time.monotonic() + STEP_LOOKUP_SECS
    while running():
        done = _run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i %j"], timeout=10)
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == name:
                return parts[0]
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    return None


class SlurmStep:
    """The launcher's handle on one step: its srun, here; the task, on its node.

    `stand_ins`: the step is a warm step (`launcher.task.warm.step`), which passes each signal on to its
    forked task when sent as its stand-in (`warm_protocol.step_signal`)."""

    def __init__(self, job_id: str, name: str, argv: list[str], env: Mapping[str, str],
                 on_line: Callable[[str], None], node: str, node_state: Callable[[str], str],
                 stand_ins: bool = False):
        self._job_id = job_id
        self.name = name
        self._stand_ins = stand_ins
        self.node = node
        self._node_state = node_state
        self._step_id: Optional[str] = None
        self._lock = threading.Lock()
        self._code: Optional[int] = None
        self.node_died = False  # its node was lost: the task must move
        self.lost_contact = False  # srun failed without word from the task: its node may be gone
        self._task_verdict = False
        self._srun_signalled = False  # the launcher signalled srun itself (no step to signal yet)
        self._proc = LocalProcess(argv, env, self._watching(on_line))
        self.pid: Optional[int] = self._proc.pid  # srun's: the task's own pid is on its node

    def _watching(self, on_line: Callable[[str], None]) -> Callable[[str], None]:
        """srun labels its task's lines (`--label`: "0: "), never its own: a task cannot pass for srun."""
        def line(text: str) -> None:
            if text.startswith(_TASK_LABEL):
                on_line(text[len(_TASK_LABEL):])
                return
            if _TASK_VERDICT.match(text):
                self._task_verdict = True
            elif _NODE_FAILURE.match(text):
                self.node_died = True
            on_line(text)
        return line

    def poll(self) -> Optional[int]:
        if self._code is not None:
            return self._code
        code = self._proc.poll()
        if code is None:
            return None
        if self.node_died:
            code = -signal.SIGKILL  # lost with its node, as a killed task is
        elif code != 0 and not self._task_verdict and not self._srun_signalled:
            # srun's own error code (1: "Unable to create step", "Node failure") would read as a training
            # failure; the task was lost, as a killed task is, and maybe its node with it.
            self.lost_contact = True
            self.node_died = node_lost(self._node_state(self.node))
            code = -signal.SIGKILL
        self._code = code
        return code

    def step_id(self) -> Optional[str]:
        """JOB.STEP of this step, once Slurm lists it (by its unique name)."""
        with self._lock:
            if self._step_id is None:
                self._step_id = step_id_of(self._job_id, self.name, lambda: self._proc.poll() is None)
            return self._step_id

    def signal(self, signum: int) -> None:
        if self._proc.poll() is not None:
            return
        step = self.step_id()
        if step is None:
            # Not a step yet (srun still waiting for it), or never will be: srun itself ends it.
            self._srun_signalled = True
            self._proc.signal(signal.SIGKILL if signum in (signal.SIGKILL, signal.SIGTERM) else signum)
            return
        said = (str(warm_protocol.step_signal(signum)) if self._stand_ins
                else signal.Signals(signum).name.removeprefix("SIG"))
        _run(["scancel", "--quiet", f"--signal={said}", step], timeout=30)


class SlurmBackend:
    """Job steps in the allocation of SLURM_JOB_ID on the nodes of SLURM_JOB_NODELIST.

    With `warm`, each node of the run gets a warm process, a step of its own started as soon as the plan
    names the node (`--overlap`, across the job's CPUs there: it reserves nothing), and each task's step is
    a warm step (`launcher.task.warm.step`) that has the task forked from it. Not with GPUs: a fork runs in
    its warm step's cgroup, which Slurm gave no GPU of the task's."""

    def __init__(self, gpus_per_task: int = 0, evaluator_gpus: int = 0,
                 environ: Optional[Mapping[str, str]] = None, warm: Optional[WarmOptions] = None,
                 warn: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n")):
        environ = os.environ if environ is None else environ
        self._warn = warn
        self._job_id = environ.get("SLURM_JOB_ID", "")
        if not self._job_id:
            raise UserError("--backend slurm runs inside a Slurm allocation (a batch script or salloc), and "
                            "SLURM_JOB_ID is not set: submit the script of `launcher export --format sbatch`")
        missing = [c for c in ("srun", "scontrol", "squeue", "scancel") if not shutil.which(c)]
        if missing:
            raise UserError(f"--backend slurm: {', '.join(missing)} not found on this node's PATH")
        self._cpus_per_task = int(environ.get("SLURM_CPUS_PER_TASK") or 1)
        self._gpus = (gpus_per_task, evaluator_gpus)
        nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST", "")
        done = _run(["scontrol", "show", "hostnames", nodelist])
        self._node_names = done.stdout.split()
        if done.returncode != 0 or not self._node_names:
            raise UserError(f"--backend slurm: cannot expand SLURM_JOB_NODELIST {nodelist!r}: "
                            f"{done.stderr.strip() or 'no nodes'}")
        self._node_cpus = dict(zip(self._node_names, cpus_per_node(
            environ.get("SLURM_JOB_CPUS_PER_NODE", ""), len(self._node_names))))
        self._addresses = self._node_addresses()
        self._node: dict[TaskId, str] = {}
        self._port: dict[TaskId, int] = {}
        self._attempts: dict[TaskId, int] = {}
        self._handles: dict[TaskId, SlurmStep] = {}
        self._lost: set[str] = set()  # nodes lost during the run
        self._warm_options = None if gpus_lib.in_use(*self._gpus) else warm
        self._warm: dict[str, WarmProcess] = {}  # node -> the run's warm process there
        self._warm_names: list[str] = []
        self._cold_reasons = ColdReasons(warn)

    # -- nodes --

    def _node_info(self, names: list[str]) -> dict[str, dict[str, str]]:
        done = _run(["scontrol", "show", "node", "-o", ",".join(names)])
        info = {}
        for line in done.stdout.splitlines():
            fields = _fields(line)
            if "NodeName" in fields:
                info[fields["NodeName"]] = fields
        return info

    def _node_addresses(self) -> dict[str, str]:
        info = self._node_info(self._node_names)
        missing = [n for n in self._node_names if n not in info]
        if missing:
            raise UserError(f"--backend slurm: scontrol knows no node {', '.join(missing)} of the allocation")
        return {name: info[name].get("NodeAddr") or name for name in self._node_names}

    def _node_state(self, name: str) -> str:
        return self._node_info([name]).get(name, {}).get("State", "UNKNOWN*")

    def _demand(self, task: TaskId) -> dict[str, float]:
        return {"CPU": float(self._cpus_per_task)}

    def _free_nodes(self, excluding: tuple[str, ...] = ()) -> list[placement_lib.Node]:
        """The allocation's nodes that are alive, with the CPUs this run's tasks do not hold."""
        states = self._node_info(self._node_names)
        nodes = []
        for name in self._node_names:
            if name in excluding or node_lost(states.get(name, {}).get("State", "UNKNOWN*")):
                continue
            node = placement_lib.Node(name, self._addresses[name], {"CPU": float(self._node_cpus[name])})
            for task, on in self._node.items():
                if on == name:
                    node.take(task, self._demand(task))
            nodes.append(node)
        return nodes

    def _pick_ports(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """`counts[node]` free ports on each node, each picked there by a tiny step; all nodes at once."""
        procs = {node: subprocess.Popen(
            ["srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}", "--quiet",
             "--job-name=launcher-ports", sys.executable, "-m", "launcher.cluster.free_ports", str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            for node, count in counts.items() if count}
        picked = {}
        for node, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=COMMAND_SECS)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            ports = [int(p) for p in out.split() if p.isdigit()]
            if proc.returncode != 0 or len(ports) != counts[node]:
                raise placement_lib.Unplaceable(f"could not pick ports on node {node}: "
                                                f"{(err or out).strip()[-300:] or f'exit {proc.returncode}'}")
            picked[node] = ports
        return picked

    def _place(self, chosen: Mapping[TaskId, placement_lib.Node],
               fixed: Mapping[TaskId, int]) -> dict[TaskId, Address]:
        counts: dict[str, int] = {}
        for task, node in chosen.items():
            if not fixed.get(task):
                counts[node.id] = counts.get(node.id, 0) + 1
        picked = self._pick_ports(counts)
        addresses = {}
        for task, node in chosen.items():
            port = fixed.get(task) or picked[node.id].pop()
            self._node[task], self._port[task] = node.id, port
            addresses[task] = Address(self._addresses[node.id], port)
        return addresses

    # -- warm processes: one per node of the run --

    def _warm_on(self, node: str) -> Optional[WarmProcess]:
        """`node`'s warm process, started on first use (its imports begin at once); None without warm starts."""
        if self._warm_options is None:
            return None
        warm = self._warm.get(node)
        if warm is None:
            name = f"launcher-warm-{node}-{len(self._warm_names) + 1}"  # unique in the job, as a task's step
            self._warm_names.append(name)
            # A path on the node, whose directory the warm process makes there (0700); nobody can guess it.
            path = os.path.join(tempfile.gettempdir(), f"launcher-warm-{secrets.token_hex(8)}", "socket")
            warm = self._warm[node] = WarmProcess(self._warm_options, socket_path=path, wrap=lambda argv: [
                "srun", "--overlap", "--nodes=1", "--ntasks=1", f"--nodelist={node}",
                f"--cpus-per-task={self._node_cpus[node]}", f"--job-name={name}", "--export=ALL", *argv])
        return warm

    def _warm_argv(self, task: TaskId, argv: list[str]) -> Optional[list[str]]:
        """The warm step's command line for `argv` on `task`'s node, or None: start it cold (said once)."""
        warm = self._warm_on(self._node[task])
        if warm is None:
            return None
        why = warm.wait_ready()
        if why is None:
            return warm_protocol.step_command(self._warm_options.python, warm.socket_path, argv)
        self._cold_reasons.say(why, f"[launcher] {task} starts cold on node {self._node[task]}: {why}")
        return None

    # -- the Backend protocol --

    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        tasks = list(spec.tasks())
        try:
            chosen = placement_lib.plan(tasks, self._demand, self._free_nodes(), settings.SPREAD,
                                        cluster=f"the Slurm allocation (job {self._job_id})")
            # A port the spec fixes is kept, on whatever node the task lands; port 0 is picked there.
            addresses = self._place(chosen, {t: spec.address(t).port for t in tasks})
        except placement_lib.Unplaceable as e:
            raise UserError(f"--backend slurm: {e}") from None
        for node in sorted(set(self._node.values())):
            self._warm_on(node)
        return spec.replace_addresses(addresses)

    def _verdict_secs(self) -> float:
        """How long slurmctld may take to call a silent node down: twice its SlurmdTimeout, and a margin."""
        done = _run(["scontrol", "show", "config"])
        m = re.search(r"^SlurmdTimeout\s*=\s*(\d+)", done.stdout, re.MULTILINE)
        return min(2 * int(m.group(1)) + 10 if m else 310, 610)

    def _node_gone(self, node: str, handle: Optional[SlurmStep]) -> bool:
        if handle is not None and handle.node_died:
            return True
        if node_lost(self._node_state(node)):
            return True
        if handle is None or not handle.lost_contact:
            return False
        # Its srun lost the task without a word: a dead node looks like this until Slurm notices. Wait
        # for Slurm's verdict, so that a lost node's tasks move instead of failing there again and again.
        deadline = time.monotonic() + self._verdict_secs()
        while time.monotonic() < deadline:
            if node_lost(self._node_state(node)):
                return True
            time.sleep(VERDICT_POLL_SECS)
        return False

    def relocate(self, task: TaskId) -> Optional[Move]:
        node = self._node[task]
        if not self._node_gone(node, self._handles.get(task)):
            return None  # its node is there: a new step on it, at the same address
        old_host = self._addresses[node]
        self._lost.add(node)
        gone = self._warm.pop(node, None)
        if gone is not None:
            gone.close()  # its srun has ended, or ends now: nothing of it is left on a dead node
        del self._node[task]
        try:
            chosen = placement_lib.plan([task], self._demand, self._free_nodes(excluding=(node,)),
                                        settings.SPREAD, cluster=f"the Slurm allocation (job {self._job_id})")
            address = self._place(chosen, {})[task]
        except placement_lib.Unplaceable as e:
            raise PlacementError(f"{task} lost its node {node} ({old_host}) and cannot move: {e}") from None
        return Move(address, old_host, f"node {node} lost")

    def step_argv(self, task: TaskId, name: str, argv: list[str]) -> list[str]:
        """The srun command line of one process of `task`."""
        gpus = gpus_lib.count_for(task.job, *self._gpus)
        # Once a node is lost, Slurm (22.05) keeps counting the CPUs of the steps that died with it, on the
        # nodes the job keeps: new steps there would wait for ever ("Requested nodes are busy"). From then on
        # steps may overlap in Slurm's books; the plan here still gives each task CPUs of its own.
        overlap = ["--overlap"] if self._lost else []
        return ["srun", "--nodes=1", "--ntasks=1", f"--nodelist={self._node[task]}", "--exact", *overlap,
                f"--cpus-per-task={self._cpus_per_task}",
                *([f"--gpus-per-task={gpus}"] if gpus else ["--gres=none"] if gpus_lib.in_use(*self._gpus) else []),
                # Not --quiet: "step creation temporarily disabled" and the like belong in the task's log.
                "--label", f"--job-name={name}", "--export=ALL", *_STEP_WRAPPER, *argv]

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None], on_end: Callable[[], None] = lambda: None) -> SlurmStep:
        # `on_end` goes unused: the loop's polls find a step's end (nothing here learns it sooner).
        attempt = self._attempts[task] = self._attempts.get(task, 0) + 1
        name = f"launcher-{task.job}-{task.index}-{attempt}"  # unique in the job: signals find the step by it
        env = dict(env)
        if task.job == PS and gpus_lib.in_use(*self._gpus):
            env.update(gpus_lib.NONE)
        warm_argv = self._warm_argv(task, argv)
        handle = self._handles[task] = SlurmStep(self._job_id, name, self.step_argv(task, name, warm_argv or argv),
                                                 env, on_line, self._node[task], self._node_state,
                                                 stand_ins=warm_argv is not None)
        return handle

    def close(self) -> None:
        for handle in self._handles.values():
            if handle.poll() is None:  # the supervisor ends every task first; this is a safety net
                handle.signal(signal.SIGKILL)
        for warm in self._warm.values():
            warm.close()  # end of its stdin ends it; its srun is killed if it does not end within seconds
        self._warm.clear()
        if self._warm_names:  # a killed srun leaves its step running: end what is left of any
            done = _run(["squeue", "-h", "-s", "-j", self._job_id, "-o", "%i %j"], timeout=10)
            for step, name in (line.split() for line in done.stdout.splitlines() if len(line.split()) == 2):
                if name in self._warm_names:
                    _run(["scancel", "--quiet", "--signal=KILL", step], timeout=30)
