"""A task whose node is gone moves to another one: which other tasks of that node move with it.

No other task restarts for a move. Every server boots under a private identity and every session carries
the live cluster (`task.membership`): the launcher publishes the new addresses in `<model_dir>/.cluster.json`
before the moved task starts, and a running task reads them when it next creates a session (a task whose
peer vanished re-creates its session anyway). A ps learns a worker's address from that worker's own session
(ClusterSpec propagation), so a moved worker or chief needs nobody else to restart; a moved ps has lost its
variables, and the chief restores the newest checkpoint into it, as after any ps restart.

The other tasks of the same lost node move in the same step, before the backend has told their handles, so
that the cluster file is written once with every new address.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional

from launcher.cluster.spec import ClusterSpec, TaskId
from launcher.launch.backends import Move
from launcher.launch.task_state import TaskState


@dataclasses.dataclass(frozen=True)
class MovePlan:
    moves: dict[TaskId, Move]      # the task that moves, and the others of its lost node

    def ahead(self, task: TaskId) -> dict[TaskId, Move]:
        """The moves of the tasks other than `task` (they are killed now and restarted at their new place)."""
        return {t: m for t, m in self.moves.items() if t != task}


def plan(task: TaskId, move: Move, states: Iterable[TaskState], spec: ClusterSpec,
         relocate: Callable[[TaskId], Optional[Move]]) -> MovePlan:
    """`relocate` is the backend's; it raises PlacementError when a task cannot be placed anywhere."""
    moves = {task: move}
    for other in states:
        if other.running and other.task not in moves and spec.address(other.task).host == move.old_host:
            ahead = relocate(other.task)
            if ahead is not None:
                moves[other.task] = ahead
    return MovePlan(moves)
