"""What the launcher knows of one task: its phase, its processes (attempts), and what it last reported."""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Optional

from launcher.cluster import status
from launcher.cluster.spec import PS, TaskId
from launcher.launch import run_record
from launcher.launch.backends import TaskHandle
from launcher.launch.task_output import TaskOutput

if TYPE_CHECKING:
    from launcher.launch.events import Status


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
    in_session: bool = False  # it has a session now (not creating its first, nor re-creating a lost one)
    local_steps: int = 0
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    host: Optional[str] = None  # the node's address it ran on
    moved: Optional[dict] = None  # {"from": old host, "to": new host, "why": ...} when its node was lost
    # For the watchdog (monotonic clock): when the launcher let this process go on past the start gate, and
    # when it last heard a status line from it.
    go_at: Optional[float] = None
    began_at: Optional[float] = None  # when the launcher started it (monotonic)
    cause: Optional[str] = None  # why it ended, when known (see root_cause)
    heard_at: Optional[float] = None
    step: Optional[int] = None  # the global step it last reported
    loop_done: bool = False     # it reported the end of its training loop (it may still be saving, waiting)
    # Why the launcher killed it, when it did (a hang): such an end is restarted whatever the policy says.
    killed_for: Optional[str] = None
    killed_at_end: bool = False  # ... after the chief's final save, so it is not restarted
    # When the launcher asked it to stop because training ended before it joined (monotonic), and whether it
    # then had to be killed (see policies.end_of_run).
    dismissed_at: Optional[float] = None
    dismiss_killed: bool = False
    memory: object = None  # root_cause.MemoryWatch: where the kernel counts its OOM kills
    failure: Optional[dict] = None  # the process's own account of its failure (status.FAILURE), if it gave one
    argv: list[str] = dataclasses.field(default_factory=list)
    local_pid: Optional[int] = None  # its pid, once seen running on this machine
    joined: bool = False  # started by `launcher scale` (a worker added), not a restart

    def record(self) -> run_record.Attempt:
        moved = self.moved and run_record.Move(self.moved.get("from"), self.moved.get("to"), self.moved.get("why"))
        return run_record.Attempt(
            started=self.started, host=self.host, moved=moved or None, first_step=self.first_step,
            ended=self.ended, cause=self.cause or None, exit_code=self.exit_code, local_steps=self.local_steps,
            killed_for=self.killed_for or None, killed_at_end=self.killed_at_end,
            sessions=[run_record.Session(t, step) for t, step in self.sessions])


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
    member: bool = True  # False once `launcher scale` asked it to leave (it finishes its step and exits 0)
    asked_to_leave_at: Optional[float] = None  # when (monotonic)

    @property
    def restarts(self) -> int:
        """Processes started after its first that were not joins (`launcher scale` bringing it back)."""
        return sum(1 for a in self.attempts[1:] if not a.joined)

    @property
    def running(self) -> bool:
        return self.handle is not None and not self.phase.ended

    @property
    def ready(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ready

    def started(self, handle: TaskHandle) -> None:
        self.handle = handle
        self.phase = Phase.SERVING if self.task.job == PS else Phase.STARTING

    @property
    def local_pid(self) -> Optional[int]:
        """The pid of its current process when that runs on this machine, else None (see proc_state)."""
        from launcher.launch import proc_state

        if self.handle is None or not self.attempts:
            return None
        # A task forked by a warm process may show that process's command line (see backends.warm).
        shown = [self.attempts[-1].argv, getattr(self.handle, "warm_argv", None)]
        return next((pid for argv in shown if argv and (pid := proc_state.local_pid(self.handle.pid, argv))), None)

    def ended(self, code: int, wall: float) -> None:
        self.attempts[-1].exit_code, self.attempts[-1].ended = code, wall

    def apply(self, event: Status) -> None:
        """Book one status line of the current process (see `status`)."""
        attempt = self.attempts[-1]
        kind, step = event.kind, event.step
        if kind == status.NO_SESSION:
            # Not a sign of life for the watchdog: a task that only ever re-creates its session is stuck.
            attempt.in_session = False
            return
        attempt.heard_at = event.mono
        if event.global_step is not None:
            attempt.step = step
        if kind == status.READY:
            attempt.ready = True
        elif kind == status.SESSION:
            self.phase = Phase.TRAINING
            attempt.in_session = True
            attempt.sessions.append((event.wall, step))
        elif kind == status.FIRST_STEP:
            attempt.first_step = event.wall
        elif kind in (status.PROGRESS, status.DONE):
            attempt.loop_done = attempt.loop_done or kind == status.DONE
            if event.local_steps is not None:
                attempt.local_steps = event.local_steps
        elif kind == status.EVAL:
            self.phase = Phase.TRAINING
            self.eval_step, self.eval_metrics = step, event.metrics
        elif kind == status.FAILURE and event.failure:
            attempt.failure = event.failure

    def record(self, launched: float) -> run_record.Task:
        sessions = [step for a in self.attempts for _, step in a.sessions]
        first_steps = [a.first_step for a in self.attempts if a.first_step is not None]
        return run_record.Task(
            job=self.task.job, index=self.task.index,
            exit_code=self.attempts[-1].exit_code if self.attempts else None,
            exit_codes=[a.exit_code for a in self.attempts], restarts=self.restarts,
            steps=sum(a.local_steps for a in self.attempts),
            start_step=sessions[0] if sessions else None, session_steps=sessions,
            first_step_secs=round(first_steps[0] - launched, 3) if first_steps else None,
            attempts=[a.record() for a in self.attempts])
