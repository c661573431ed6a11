"""Where tasks run. A backend only knows how to place, start, watch and stop one task; supervision
(restarts, the end of a run, signals, the run record) is the same for every backend (`supervisor`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Protocol

from launcher.cluster import settings
from launcher.cluster.spec import Address, ClusterSpec, TaskId

if TYPE_CHECKING:
    from launcher.launch.backends.warm import WarmOptions


@dataclasses.dataclass(frozen=True)
class Move:
    """A task whose next process runs at a new address: its node is gone."""

    address: Address
    old_host: str
    why: str


class PlacementError(Exception):
    """A task cannot be placed anywhere; the message names what is missing."""


class TaskHandle(Protocol):
    """One running process of one task."""

    pid: Optional[int]

    def poll(self) -> Optional[int]:
        """The exit status once the process has ended and its output is drained (Popen's convention:
        negative for a signal), else None."""

    def signal(self, signum: int) -> None:
        """Send `signum` to the task's process group; a process already gone is not an error."""


class Backend(Protocol):
    def resolve(self, spec: ClusterSpec) -> ClusterSpec:
        """The spec with every address real (ports picked), checked for this backend."""

    def relocate(self, task: TaskId) -> Optional[Move]:
        """Before a restart: where `task` must move when its node is gone (None: it stays). Raises
        PlacementError when no node can take it."""

    def start(self, task: TaskId, argv: list[str], env: Mapping[str, str],
              on_line: Callable[[str], None], on_end: Callable[[], None] = ...) -> TaskHandle:
        """Start one process of `task`; every output line goes to `on_line`. `on_end()` (from any thread, at
        most once) once the process has ended, when the backend learns it at once (a backend that does not
        is polled, as any is)."""

    def resolve_added(self, spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
        """During a run (`launcher scale`): the spec with the addresses of `tasks`, new to it, made real.
        Raises PlacementError when they cannot be placed."""

    def close(self) -> None:
        """Release what the backend holds; called once, after every task has ended."""


def resolve_added(backend: Backend, spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
    """`backend.resolve_added`, or PlacementError for a backend that cannot add tasks to a running run."""
    method = getattr(backend, "resolve_added", None)
    if method is None:
        raise PlacementError(f"the {type(backend).__name__} cannot add tasks to a running run")
    return method(spec, tasks)


def get(engine: settings.Engine, ray: Optional[settings.Ray] = None, gpus: Optional[settings.Gpus] = None,
        warm: Optional["WarmOptions"] = None) -> Backend:
    """The backend that `engine` names, with the Ray settings `ray` where it is Ray and each task's GPUs;
    `warm`: what its warm processes need, or None to start every task cold."""
    from launcher.cluster.errors import UserError

    from launcher.launch.isolation import Mode

    isolation = Mode.parse(engine.isolation)
    gpus = gpus or settings.Gpus()
    if engine.backend == "local":
        from launcher.launch.backends.local import LocalBackend

        return LocalBackend(isolation, warm=warm, gpus=gpus)
    if engine.backend == "ray":
        if isolation is Mode.REQUIRED:
            raise UserError("--isolation required: Ray tasks talk across nodes and cannot be isolated; "
                            "run Ray on a private network (see docs/security.md)")
        from launcher.launch.backends.ray_backend import RayBackend

        return RayBackend(ray, warm=warm, gpus=gpus)
    if engine.backend == "slurm":
        if isolation is Mode.REQUIRED:
            raise UserError("--isolation required: Slurm tasks talk across nodes and cannot be isolated; "
                            "run them on a private cluster network (see docs/slurm.md)")
        from launcher.launch.backends.slurm_backend import SlurmBackend

        return SlurmBackend(gpus.gpus_per_task, gpus.evaluator_gpus, warm=warm)
    raise UserError(f"--backend {engine.backend!r}: unknown backend (known: local, ray, slurm)")
