"""A task whose node is gone moves to another one: which other tasks move with it, and which must restart.

TensorFlow fixes a server's cluster at start, so every running task that connects to a moved task must
restart to learn its new address. The other tasks of the same lost node move in the same step, before
the backend has told their handles, so that the others restart only once.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional

from launcher.cluster import contacts
from launcher.cluster.spec import ClusterSpec, TaskId
from launcher.launch.backends import Move
from launcher.launch.task_state import TaskState


@dataclasses.dataclass(frozen=True)
class MovePlan:
    moves: dict[TaskId, Move]      # the task that moves, and the others of its lost node
    learners: tuple[TaskId, ...]   # running tasks that connect to a moved one: restarted to learn its address

    def ahead(self, task: TaskId) -> dict[TaskId, Move]:
        """The moves of the tasks other than `task` (they are killed now and restarted at their new place)."""
        return {t: m for t, m in self.moves.items() if t != task}


def plan(task: TaskId, move: Move, states: Iterable[TaskState], spec: ClusterSpec,
         relocate: Callable[[TaskId], Optional[Move]]) -> MovePlan:
    """`relocate` is the backend's; it raises PlacementError when a task cannot be placed anywhere."""
    states = list(states)
    moves = {task: move}
    for other in states:
        if other.running and other.task not in moves and spec.address(other.task).host == move.old_host:
            ahead = relocate(other.task)
            if ahead is not None:
                moves[other.task] = ahead
    learners = tuple(s.task for s in states if s.running and s.task not in moves
                     and any(contacts.must_learn(moved, s.task) for moved in moves))
    return MovePlan(moves, learners)
