"""Which node each task runs on: a plan made before anything starts, so that a cluster without room says
what is missing instead of leaving tasks pending, and so that `spread` means what it says.

Ray's own SPREAD strategy is best effort and knows nothing of roles. The plan here puts training tasks
(chief, workers) on as many distinct nodes as there are and the ps apart from each other (`spread`), or
fills one node before the next (`pack`); the Ray backend then reserves it as one placement group, each
bundle pinned to its node (the Slurm backend plans its job steps the same way). No Ray here: nodes are
plain records.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

from launcher.cluster.settings import PACK
from launcher.cluster.spec import CHIEF, PS, WORKER, TaskId

_EPSILON = 1e-9


# What one task reserves: the same for every task, or per task (GPUs for the chief and workers only).
Demand = Union[Mapping[str, float], Callable[[TaskId], Mapping[str, float]]]


def demand_for(demand: Demand, task: TaskId) -> Mapping[str, float]:
    return demand(task) if callable(demand) else demand


class Unplaceable(Exception):
    """The cluster cannot hold the tasks; the message names the resource and how much is missing."""


@dataclasses.dataclass
class Node:
    id: str
    address: str
    free: dict[str, float]  # resources not yet given to a task of this run
    tasks: list[TaskId] = dataclasses.field(default_factory=list)

    def fits(self, demand: Mapping[str, float]) -> bool:
        return all(self.free.get(r, 0.0) + _EPSILON >= amount for r, amount in demand.items())

    def take(self, task: TaskId, demand: Mapping[str, float]) -> None:
        for r, amount in demand.items():
            self.free[r] = self.free.get(r, 0.0) - amount
        self.tasks.append(task)

    def count(self, jobs: Iterable[str]) -> int:
        return sum(t.job in jobs for t in self.tasks)


def _fmt(amount: float) -> str:
    return f"{amount:g}"


def plan(tasks: Sequence[TaskId], demand: Demand, nodes: Sequence[Node],
         placement: str, cluster: str = "the Ray cluster") -> dict[TaskId, Node]:
    """A node for each of `tasks`, each needing `demand`, given what `nodes` have free (updated in place).

    Raises Unplaceable naming the first resource the cluster lacks, or the task no node has room for.
    """
    _check_totals(tasks, demand, nodes, cluster)
    training = (CHIEF, WORKER)
    order = sorted(tasks, key=lambda t: (t.job not in training, t.job != PS))  # training, ps, the rest
    chosen: dict[TaskId, Node] = {}
    for task in order:
        wanted = demand_for(demand, task)
        candidates = [n for n in nodes if n.fits(wanted)]
        if not candidates:
            free = "; ".join(f"{n.address}: " + ", ".join(f"{r} {_fmt(max(n.free.get(r, 0.0), 0.0))}"
                                                           for r in wanted) for n in nodes)
            raise Unplaceable(f"no node has room for {task} (needs "
                              + ", ".join(f"{r} {_fmt(a)}" for r, a in wanted.items())
                              + f"); free: {free or 'no alive nodes'}")
        node = min(candidates, key=lambda n: _score(n, task, placement, nodes))
        node.take(task, wanted)
        chosen[task] = node
    return chosen


def _score(node: Node, task: TaskId, placement: str, nodes: Sequence[Node]) -> tuple:
    position = nodes.index(node)  # ties go to the earlier node: plans are repeatable
    if placement == PACK:
        return (-len(node.tasks), position)
    if task.job in (CHIEF, WORKER):
        return (node.count((CHIEF, WORKER)), len(node.tasks), position)
    if task.job == PS:
        return (node.count((PS,)), len(node.tasks), position)
    return (len(node.tasks), position)


def _check_totals(tasks: Sequence[TaskId], demand: Demand, nodes: Sequence[Node], cluster: str) -> None:
    wanted = [demand_for(demand, t) for t in tasks]
    for resource in dict.fromkeys(r for w in wanted for r in w):
        amounts = [w[resource] for w in wanted if w.get(resource)]
        need, have = sum(amounts), sum(max(n.free.get(resource, 0.0), 0.0) for n in nodes)
        if need > have + _EPSILON:
            each = (f"{len(amounts)} task{'s' if len(amounts) != 1 else ''} x {_fmt(amounts[0])}"
                    if len(set(amounts)) == 1 else " + ".join(_fmt(a) for a in amounts))
            raise Unplaceable(f"{cluster} lacks {resource}: {_fmt(need - have)} missing "
                              f"({each} = {_fmt(need)} needed, {_fmt(have)} free on {len(nodes)} alive "
                              f"node{'s' if len(nodes) != 1 else ''})")


def demand_of(cpus_per_task: float, resources: Optional[Mapping[str, float]]) -> dict[str, float]:
    return {"CPU": float(cpus_per_task), **{k: float(v) for k, v in (resources or {}).items()}}


def with_gpus(demand: Mapping[str, float], gpus: Callable[[TaskId], int]) -> Callable[[TaskId], dict[str, float]]:
    """`demand` plus each task's GPUs (Ray's resource "GPU") for the tasks that get any."""
    return lambda task: {**demand, **({"GPU": float(gpus(task))} if gpus(task) else {})}
