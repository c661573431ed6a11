"""What the launcher knows of one task: its phase, its processes (attempts), and what it last reported."""

from __future__ import annotations

import dataclasses
import enum
import time
from typing import Optional

from launcher.cluster import status
from launcher.cluster.spec import PS, TaskId
from launcher.launch.backends import TaskHandle
from launcher.launch.task_output import TaskOutput


class Phase(enum.Enum):
    PENDING = "pending"      # not started yet
    STARTING = "starting"    # its process is importing, checking flags, waiting for its session
    SERVING = "serving"      # a ps: its server is up
    TRAINING = "training"    # has a session (the evaluator: scoring)
    DONE = "done"            # exited 0 by itself
    STOPPED = "stopped"      # ended by the launcher, or not needed any more
    FAILED = "failed"        # ended for good with an error

    @property
    def ended(self) -> bool:
        return self in (Phase.DONE, Phase.STOPPED, Phase.FAILED)


@dataclasses.dataclass
class Attempt:
    """One process of a task. Times are Unix epoch seconds, comparable across processes and machines."""

    started: float
    ready: bool = False  # flags checked, model imported (status READY)
    first_step: Optional[float] = None
    sessions: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (time, global step)
    local_steps: int = 0
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    host: Optional[str] = None  # the node's address it ran on
    moved: Optional[dict] = None  # {"from": old host, "to": new host, "why": ...} when its node was lost

    def record(self) -> dict:
        return {"started": self.started, "host": self.host, **({"moved": self.moved} if self.moved else {}), "first_step": self.first_step, "ended": self.ended,
                "exit_code": self.exit_code, "local_steps": self.local_steps,
                "sessions": [{"time": t, "step": step} for t, step in self.sessions]}


@dataclasses.dataclass
class TaskState:
    task: TaskId
    output: TaskOutput
    handle: Optional[TaskHandle] = None
    phase: Phase = Phase.PENDING
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    eval_step: Optional[int] = None
    eval_metrics: Optional[dict] = None
    restart_for: Optional[str] = None  # why the launcher ended it to start it again (a peer moved)

    @property
    def restarts(self) -> int:
        return max(len(self.attempts) - 1, 0)

    @property
    def running(self) -> bool:
        return self.handle is not None and not self.phase.ended

    @property
    def ready(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ready

    def started(self, handle: TaskHandle) -> None:
        self.handle = handle
        self.phase = Phase.SERVING if self.task.job == PS else Phase.STARTING

    def ended(self, code: int) -> None:
        self.attempts[-1].exit_code, self.attempts[-1].ended = code, time.time()

    def on_status(self, event: dict) -> None:
        """Book one status line of the current process (see `status`)."""
        attempt = self.attempts[-1]
        kind, step = event.get("event"), event.get("step")
        if kind == status.READY:
            attempt.ready = True
        elif kind == status.SESSION:
            self.phase = Phase.TRAINING
            attempt.sessions.append((time.time(), step))
        elif kind == status.FIRST_STEP:
            attempt.first_step = time.time()
        elif kind in (status.PROGRESS, status.DONE):
            attempt.local_steps = event.get("local_steps", attempt.local_steps)
        elif kind == status.EVAL:
            self.phase = Phase.TRAINING
            self.eval_step, self.eval_metrics = step, event.get("metrics")

    def record(self, launched: float) -> dict:
        sessions = [step for a in self.attempts for _, step in a.sessions]
        first_steps = [a.first_step for a in self.attempts if a.first_step is not None]
        return {"job": self.task.job, "index": self.task.index,
                "exit_code": self.attempts[-1].exit_code if self.attempts else None,
                "exit_codes": [a.exit_code for a in self.attempts], "restarts": self.restarts,
                "steps": sum(a.local_steps for a in self.attempts),
                "start_step": sessions[0] if sessions else None, "session_steps": sessions,
                "first_step_secs": round(first_steps[0] - launched, 3) if first_steps else None,
                "attempts": [a.record() for a in self.attempts]}
