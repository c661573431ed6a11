"""Tasks as OS processes on the nodes of a Ray cluster.

Each task gets one Ray actor, in a bundle of a placement group pinned to the node a plan chose (see
`placement`); the actor picks the task's port on its own node,
then starts and restarts the task program there as a subprocess, the same program and flags as locally.
The resolved spec is built from the real node addresses before any server starts. Output comes back
through the actor, line by line. Ray is imported only here, and only when this backend is asked for.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Mapping, Optional

from launcher.export import security
from launcher.cluster import free_ports, gpus as gpus_lib, warm_protocol
from launcher.launch import ports
from launcher.launch.backends import Move, PlacementError, placement as placement_lib
from launcher.launch.backends.local import LocalProcess
from launcher.cluster import settings
from launcher.launch.backends.warm import ColdReasons, StartCold, WarmOptions, WarmProcess, WarmTask
from launcher.cluster.errors import UserError
from launcher.cluster.peers import accepts_connections
from launcher.cluster.spec import PS, Address, ClusterSpec, TaskId
from launcher.cluster.task_env import PARENT_PID


def _import_ray():
    """Ray, imported late: its auth mode is read from the environment at import time."""
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install '.[ray]' (or: pip install 'ray==2.60.*')") from None
    return ray

READ_WAIT_SECS = 0.5
READ_TIMEOUT_SECS = 30.0  # a read answers within READ_WAIT_SECS when its node is there
UNAVAILABLE_RETRY_SECS = 1.0
SILENT_LIMIT_SECS = 180.0  # far beyond Ray's own health check (30 s by default)
START_TIMEOUT_SECS = 120.0  # an actor to start in its bundle and start the task process


class _TaskRunner:
    """The actor: runs one task's processes on its node, one at a time."""

    def __init__(self) -> None:
        self._proc: Optional[LocalProcess] = None
        self._lines: list[str] = []
        self._cond = threading.Condition()

    def place(self, port: int) -> tuple[str, int, str]:
        """(node address, port, node id): a free port when `port` is 0."""
        import ray

        host = ray.util.get_node_ip_address()
        if port == 0:
            port = free_ports.pick()
        return host, port, ray.get_runtime_context().get_node_id()

    def start(self, argv: list[str], env_delta: Mapping[str, str], port: int,
              warm: Optional[tuple[str, list[str]]] = None) -> int:
        """`warm`: (socket, argv) of this node's warm process, to fork the task from (else, or when it
        will not fork, the task starts cold)."""
        _wait_until_free(port)
        env = _node_env(env_delta)
        env[PARENT_PID] = str(os.getpid())  # the task watches this actor's process, not the launcher
        self._lines = []
        # The same process handling as a local run: own session, output line by line, group signals.
        self._proc = None
        if warm is not None:
            try:
                self._proc = WarmTask(warm[0], argv, env, self._append, warm[1])
            except StartCold as e:
                self._append(f"[launcher] starts cold: {e}\n")
        if self._proc is None:
            self._proc = LocalProcess(argv, env, self._append)
        return self._proc.pid

    def _append(self, line: str) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def read(self) -> tuple[list[str], Optional[int]]:
        """Lines since the last call, and the exit status once the process has ended and is drained."""
        code = self._proc.poll()  # not under the lock: once it returns a code, every line is appended
        with self._cond:
            if code is None and not self._lines:
                self._cond.wait(READ_WAIT_SECS)
            lines, self._lines = self._lines, []
        return lines, code

    def signal(self, signum: int) -> None:
        if self._proc is not None:
            self._proc.signal(signum)


def _node_env(env_delta: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # Ray sets this for actors with num_cpus=0; the task's own TensorFlow must not inherit it.
    env.pop("OMP_NUM_THREADS", None)
    env.update(env_delta)
    return env


class _WarmNode:
    """The actor that holds a node's warm process for the run (see backends.warm): the node's tasks fork
    from it. Its end (the run's, or its node's) ends the warm process, which reads its stdin from here.

    Where the node's own environment names a warm base ($LAUNCHER_WARM_BASE, set by whoever started the
    node: a path on the launcher's machine means nothing here), the warm process is that base's fork, in
    this actor's network namespace; else, or when the base will not, it imports TensorFlow itself."""

    def __init__(self, model: str, env_delta: Mapping[str, str]) -> None:
        base = os.environ.get(warm_protocol.BASE_ENV) or None
        self._warm = WarmProcess(WarmOptions(model, _node_env(env_delta), base=base),
                                 enter=["/proc/self/ns/net"] if base else ())

    def ready(self) -> tuple[Optional[str], str, list[str], Optional[str]]:
        """(why it cannot fork or None, its socket, its argv, why the node's warm base would not fork it or
        None), once its imports are done."""
        return self._warm.wait_ready(), self._warm.socket_path, self._warm.argv, self._warm.base_refusal

    def close(self) -> None:
        self._warm.close()


def _wait_until_free(port: int, timeout_secs: float = 60.0) -> None:
    """A task orphaned by a dead actor still holds its port until it notices and exits (see task.parent_watch)."""
    import time

    deadline = time.monotonic() + timeout_secs
    while ports.in_use(Address("", port)) and time.monotonic() < deadline:
        time.sleep(0.2)


class RayTask:
    """The launcher's handle on one task process run by an actor."""

    def __init__(self, actor, argv: list[str], env_delta: Mapping[str, str], port: int,
                 on_line: Callable[[str], None], warm: Optional[tuple[str, list[str]]] = None):
        self._ray = _import_ray()
        self._actor = actor
        self._code: Optional[int] = None
        self.node_died = False  # the actor died because its node did: the task must move
        self.warm_argv = warm[1] if warm else None  # what a forked task may show as its command line
        self.pid: Optional[int] = self._ray.get(actor.start.remote(argv, env_delta, port, warm),
                                                timeout=START_TIMEOUT_SECS)
        self._pump = threading.Thread(target=self._follow, args=(on_line,), daemon=True)
        self._pump.start()

    @classmethod
    def lost(cls, node_died: bool) -> "RayTask":
        """A task that could not start because its actor or node died first: it has ended (as if
        SIGKILLed), so that the supervisor judges it as any lost task, and moves it if its node is gone."""
        handle = cls.__new__(cls)
        handle._ray, handle._actor, handle._code, handle.node_died, handle.pid = _import_ray(), None, -9, node_died, None
        handle.warm_argv = None
        return handle

    def _follow(self, on_line: Callable[[str], None]) -> None:
        silent_since: Optional[float] = None
        try:
            while True:
                try:
                    lines, code = self._ray.get(self._actor.read.remote(), timeout=READ_TIMEOUT_SECS)
                    silent_since = None
                except (self._ray.exceptions.ActorUnavailableError, self._ray.exceptions.GetTimeoutError):
                    # Its node does not answer (gone, or cut off): Ray says within its health-check time
                    # whether the actor is back or dead; until then the task may well be running. Should
                    # Ray never say, the task counts as lost after SILENT_LIMIT_SECS: no wait is unbounded.
                    silent_since = silent_since or time.monotonic()
                    if time.monotonic() - silent_since > SILENT_LIMIT_SECS:
                        self.node_died = True
                        self._code = -9
                        return
                    time.sleep(UNAVAILABLE_RETRY_SECS)
                    continue
                for line in lines:
                    on_line(line)
                if code is not None:
                    self._code = code
                    return
        except self._ray.exceptions.RayError as e:
            # The actor (its Ray worker or node) died: the task is gone with it. Whether its node died too
            # Ray says by type (a node's death, a drained node's actors are `preempted`); for any other
            # actor death `relocate` asks Ray whether the node is alive.
            self.node_died = isinstance(e, self._ray.exceptions.NodeDiedError) or bool(getattr(e, "preempted", False))
            self._code = -9

    def poll(self) -> Optional[int]:
        return self._code

    def signal(self, signum: int) -> None:
        if self._actor is None:
            return
        try:
            self._ray.get(self._actor.signal.remote(signum), timeout=10)
        except self._ray.exceptions.RayError:  # GetTimeoutError included: a silent node gets no signal
            pass


def _check_reachable(address: str) -> None:
    if not accepts_connections(address, timeout_secs=5):
        # ray.init would wait for minutes on an address where nothing listens.
        raise UserError(f"--ray_address {address!r}: nothing accepts connections there")


def _token_available() -> bool:
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or os.path.exists(os.path.expanduser("~/.ray/auth_token")))


RESERVE_SECS = 15.0
# Reserved by every bundle on the node it is pinned to: Ray gives each node a resource "node:<address>".
_PIN = 0.001


class RayBackend:
    """Tasks reserve real resources (`cpus_per_task`, custom `resources`) in a placement group whose
    bundles are pinned to the nodes of a plan (`placement`); a task whose node is lost moves to a node with
    room, in a placement group of its own."""

    def __init__(self, options: Optional[settings.Ray] = None,
                 warm: Optional[WarmOptions] = None, gpus: Optional[settings.Gpus] = None,
                 warn: Callable[[str], None] = lambda line: sys.stderr.write(line + "\n")):
        self._warn = warn
        options = options or settings.Ray()
        address = options.ray_address
        gpus = gpus or settings.Gpus()
        if address:
            _check_reachable(address)
            if _token_available():
                # `ray start --head` turns token auth on when a token exists, but a driver connecting by
                # address does not send it unless told to; a token-mode driver works on open clusters too.
                os.environ.setdefault("RAY_AUTH_MODE", "token")
        self._ray = ray = _import_ray()
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR", configure_logging=False)
        self._gpus = (gpus.gpus_per_task, gpus.evaluator_gpus)
        # Per task: the chief and workers (and the evaluator) reserve their GPUs; Ray hands each actor its
        # own devices in CUDA_VISIBLE_DEVICES, which the task process inherits.
        self._demand = placement_lib.with_gpus(placement_lib.demand_of(options.ray_cpus_per_task,
                                                                       options.ray_resources),
                                               lambda t: gpus_lib.count_for(t.job, *self._gpus))
        self._placement = options.ray_placement
        self._remote = ray.remote(max_concurrency=4)(_TaskRunner)
        self._actors: dict[TaskId, object] = {}
        self._bundles: dict[TaskId, tuple[object, int]] = {}  # placement group, bundle index
        self._nodes: dict[TaskId, str] = {}  # node id
        self._hosts: dict[TaskId, str] = {}
        self._ports: dict[TaskId, int] = {}
        self._handles: dict[TaskId, RayTask] = {}
        self._groups: list = []
        self._warm_options = warm
        self._warm_remote = ray.remote(max_concurrency=4)(_WarmNode)
        self._warm_nodes: dict[str, object] = {}  # node id -> its warm process's actor
        self._cold_reasons = ColdReasons(warn)

    # -- warm processes: one per node of the run --

    def _warm_node(self, node_id: str):
        """The actor of `node_id`'s warm process, started on first use (its imports begin at once)."""
        actor = self._warm_nodes.get(node_id)
        if actor is None and self._warm_options is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            delta = {k: v for k, v in self._warm_options.env.items() if os.environ.get(k) != v}
            actor = self._warm_nodes[node_id] = self._warm_remote.options(
                num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(self._warm_options.model, delta)
        return actor

    def _warm_for(self, task: TaskId) -> Optional[tuple[str, list[str]]]:
        """(socket, argv) of the warm process on `task`'s node, or None: start it cold (said once)."""
        actor = self._warm_node(self._nodes.get(task, ""))
        if actor is None:
            return None
        try:
            why, path, argv, base_refusal = self._ray.get(actor.ready.remote(), timeout=START_TIMEOUT_SECS)
        except (self._ray.exceptions.RayError, self._ray.exceptions.GetTimeoutError) as e:
            self._warm_nodes.pop(self._nodes.get(task, ""), None)
            why, base_refusal = f"its node's warm process is gone ({type(e).__name__})", None
        if base_refusal is not None:
            self._cold_reasons.say(base_refusal, f"[launcher] on {self._hosts.get(task)}: {base_refusal}; the "
                                   "node's warm process imports TensorFlow itself")
        if why is None:
            return path, argv
        self._cold_reasons.say(why, f"[launcher] {task} starts cold on {self._hosts.get(task)}: {why}")
        return None

    # -- placement --

    def _alive_nodes(self, excluding: tuple[str, ...] = ()) -> list[placement_lib.Node]:
        """Alive nodes with what this run has not reserved on them yet (the cluster is taken as ours)."""
        nodes = []
        for info in sorted(self._ray.nodes(), key=lambda n: n["NodeManagerAddress"]):
            if not info["Alive"] or info["NodeID"] in excluding:
                continue
            node = placement_lib.Node(info["NodeID"], info["NodeManagerAddress"], dict(info["Resources"]))
            for task, node_id in self._nodes.items():
                if node_id == node.id:
                    node.take(task, self._demand(task))
            nodes.append(node)
        return nodes

    def _reserve(self, chosen: dict[TaskId, placement_lib.Node]) -> None:
        """One placement group for `chosen`, each bundle pinned to its node; waits until Ray holds it."""
        from ray.util.placement_group import placement_group, remove_placement_group

        tasks = list(chosen)
        bundles = [{**self._demand(t), f"node:{chosen[t].address}": _PIN} for t in tasks]
        group = placement_group(bundles, strategy="PACK")
        if not group.wait(timeout_seconds=RESERVE_SECS):
            remove_placement_group(group)
            raise placement_lib.Unplaceable(
                f"Ray could not reserve {len(tasks)} bundle(s) of "
                + ", ".join(f"{r} {a:g}" for r, a in self._demand(tasks[0]).items())
                + f" within {RESERVE_SECS:g}s (resources in use by another job?)")
        self._groups.append(group)
        for index, task in enumerate(tasks):
            self._bundles[task] = (group, index)
            self._nodes[task] = chosen[task].id

    def _actor(self, task: TaskId):
        actor = self._actors.get(task)
        if actor is None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            group, index = self._bundles[task]
            demand = self._demand(task)
            custom = {r: a for r, a in demand.items() if r not in ("CPU", "GPU")}
            actor = self._actors[task] = self._remote.options(
                num_cpus=demand["CPU"], num_gpus=demand.get("GPU", 0), resources=custom,
                scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index),
            ).remote()
        return actor

    def _place(self, tasks: list[TaskId], ports: Mapping[TaskId, int]) -> dict[TaskId, Address]:
        placed = {task: self._actor(task).place.remote(ports.get(task, 0)) for task in tasks}
        addresses = {}
        for task, ref in placed.items():
            try:
                host, port, node = self._ray.get(ref, timeout=START_TIMEOUT_SECS)
            except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError) as e:
                raise placement_lib.Unplaceable(f"its actor did not start on the chosen node ({type(e).__name__})"
                                                ) from None
            addresses[task], self._hosts[task], self._ports[task] = Address(host, port), host, port
            self._nodes[task] = node
        return addresses

    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        tasks = list(spec.tasks())
        try:
            self._reserve(placement_lib.plan(tasks, self._demand, self._alive_nodes(), self._placement))
            addresses = self._place(tasks, {t: spec.address(t).port for t in tasks})
        except placement_lib.Unplaceable as e:
            raise UserError(f"--backend ray: {e}") from None
        for node_id in set(self._nodes.values()):
            self._warm_node(node_id)  # every node imports while the tasks are being started
        spec = spec.replace_addresses(addresses)
        self._warn(security.note_for_run(spec))  # as `export` says it: these ports are open to the network
        return spec

    def resolve_added(self, spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
        """Workers added during the run (`launcher scale`): placed like the first tasks, on a live node."""
        try:
            self._reserve(placement_lib.plan(tasks, self._demand, self._alive_nodes(), self._placement))
            return spec.replace_addresses(self._place(tasks, {}))
        except placement_lib.Unplaceable as e:
            raise PlacementError(str(e)) from None

    def relocate(self, task: TaskId) -> Optional[Move]:
        node_id, old_host = self._nodes[task], self._hosts[task]
        handle = self._handles.get(task)
        said_lost = handle is not None and handle.node_died
        if not said_lost and self._node_alive(node_id):
            return None  # its node is there: the task restarts on it, at the same address
        del self._nodes[task]
        try:
            chosen = placement_lib.plan([task], self._demand, self._alive_nodes(excluding=(node_id,)),
                                        self._placement)
            self._reserve(chosen)
        except placement_lib.Unplaceable as e:
            raise PlacementError(f"{task} lost its node {old_host} and cannot move: {e}") from None
        self._actors.pop(task, None)  # died with its node
        try:
            address = self._place([task], {})[task]
        except placement_lib.Unplaceable as e:  # the chosen node died too, in the meantime
            raise PlacementError(f"{task} lost its node {old_host} and cannot move: {e}") from None
        return Move(address, old_host, f"node {old_host} lost")

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None], on_end: Callable[[], None] = lambda: None) -> RayTask:
        # `on_end` goes unused: the loop's polls find an actor's end (its exit comes back as a Ray result).
        delta = {k: v for k, v in env.items() if os.environ.get(k) != v}
        if task.job == PS and gpus_lib.in_use(*self._gpus):
            delta.update(gpus_lib.NONE)  # the actor's own CUDA_VISIBLE_DEVICES would be the node's
        port = self._ports[task]
        handle = None
        for _ in range(2):
            try:
                handle = RayTask(self._actor(task), argv, delta, port, on_line, self._warm_for(task))
                break
            except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError):
                self._actors.pop(task, None)
                if not self._node_alive(self._nodes.get(task, "")):
                    break  # its node died between the restart decision and the start: the task must move
                # else its Ray worker died: a new actor in the same bundle, on the same node
        if handle is None:
            handle = RayTask.lost(node_died=not self._node_alive(self._nodes.get(task, "")))
        self._handles[task] = handle
        return handle

    def _node_alive(self, node_id: str) -> bool:
        return any(n["NodeID"] == node_id and n["Alive"] for n in self._ray.nodes())

    def close(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for actor in self._warm_nodes.values():
            try:
                self._ray.get(actor.close.remote(), timeout=10)
            except Exception:  # its node is gone, and its warm process with it
                pass
        for actor in [*self._actors.values(), *self._warm_nodes.values()]:
            try:
                self._ray.kill(actor)
            except Exception:  # already dead; nothing else to release
                pass
        self._actors.clear()
        self._warm_nodes.clear()
        for group in self._groups:
            try:
                remove_placement_group(group)
            except Exception:  # its nodes are gone
                pass
        self._ray.shutdown()  # stops the local instance this backend started; detaches from a remote one
