"""Explaining a hang: who is the culprit, and what the others wait on, in one line a person can act on.

Per live task it looks at what the kernel says (a stopped process), whether its port accepts connections
(a dead or cut-off server), what it last reported (phase, step, seconds of silence) and where its stack is.
The culprits are, in this order of evidence: tasks that are stopped or do not accept connections; else
the silent tasks when others still train (they block on something of their own: input, a deadlock); else
every silent task, with the cause left to their stacks.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from launcher.cluster.spec import CHIEF, EVALUATOR, PS, WORKER, TaskId
from launcher.launch import proc_state, reachability
from launcher.launch.stacks import Stacks
from launcher.launch.task_state import TaskState
from launcher.launch.watchdog import Alarm


CHIEF_0 = TaskId(CHIEF, 0)


@dataclasses.dataclass(frozen=True)
class Probe:
    task: TaskId
    phase: str
    state: Optional[str]           # /proc state letter, None when not local
    reach: Optional[str]           # its port seen from a peer: reachability.ACCEPTS/REFUSED/UNREACHABLE; None: not checked
    step: Optional[int]
    silent_secs: Optional[float]

    @property
    def stopped(self) -> bool:
        return proc_state.is_stopped(self.state)

    @property
    def cut_off(self) -> bool:
        """Its peers cannot talk to it: nothing listens, or its host does not answer."""
        return self.reach in (reachability.REFUSED, reachability.UNREACHABLE)

    def record(self) -> dict:
        return {"phase": self.phase, "process": proc_state.describe(self.state) if self.state else None,
                "accepts_connections": None if self.reach is None else self.reach == reachability.ACCEPTS,
                "reachability": self.reach, "step": self.step,
                "silent_secs": None if self.silent_secs is None else round(self.silent_secs, 1)}


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    verdict: str
    culprits: tuple[TaskId, ...]
    probes: tuple[Probe, ...]


def probe(states: list[TaskState], alarm: Alarm, address_of: Callable[[TaskId], str]) -> list[Probe]:
    probes = []
    pids = {s.task: s.local_pid for s in states if s.running}
    for state in states:
        if not state.running:
            continue
        pid = pids[state.task]
        # Seen from its peers, as the tasks that wait on it see it: from its own network namespace a cut-off
        # host still reaches itself.
        peers = [p for t, p in pids.items() if t != state.task]
        has_server = state.task.job != EVALUATOR and state.ready
        silence = alarm.silence(state.task)
        probes.append(Probe(state.task, state.phase.value, proc_state.state(pid),
                            reachability.check_from_peers(address_of(state.task), pid, peers) if has_server
                            else None,
                            state.attempts[-1].step if state.attempts else None,
                            silence.secs if silence else None))
    return probes


def culprits_of(alarm: Alarm, probes: list[Probe]) -> tuple[TaskId, ...]:
    """Stopped or unreachable tasks; else the silent ones; else every chief and worker."""
    blockers = [p.task for p in probes if p.stopped or p.cut_off]
    if blockers:
        return tuple(blockers)
    live = {p.task for p in probes}
    silent = [s.task for s in alarm.silent if s.task in live]
    return tuple(silent or [p.task for p in probes if p.task.job in (CHIEF, WORKER)])


def _names(tasks) -> str:
    names = [str(t) for t in tasks]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def explain(alarm: Alarm, probes: list[Probe], stacks: dict[str, Stacks],
            address_of: Callable[[TaskId], str], alarm_limit: float) -> Diagnosis:
    by_task = {p.task: p for p in probes}
    blockers = [p.task for p in probes if p.stopped or p.cut_off]
    trainers = [p.task for p in probes if p.task.job in (CHIEF, WORKER)]
    culprits = list(culprits_of(alarm, probes))

    def culprit_text(task: TaskId) -> str:
        p = by_task[task]
        if p.reach == reachability.UNREACHABLE:
            text = f"{task} is unreachable at {address_of(task)} (connections time out: its host is cut off or down)"
        elif p.reach == reachability.REFUSED:
            text = f"{task} does not accept connections at {address_of(task)}"
        elif p.stopped:
            text = f"{task} alive but {proc_state.describe(p.state)}"
        else:
            text = f"{task} alive ({proc_state.describe(p.state)})" if p.state else f"{task} alive"
        if p.silent_secs is not None:
            text += f", no status for {p.silent_secs:.0f} s"
            if (s := alarm.silence(task)) and s.in_session_creation:
                text += " in session creation"
        frame = stacks.get(task.name)
        if frame and frame.frame:
            text += f" (its stack: {frame.frame})"
        return text

    # Tasks report about once a second while they step: a few seconds without a word is waiting.
    waits_after = min(5.0, alarm_limit / 2)
    waiting = [t for t in trainers if t not in culprits
               and (s := alarm.silence(t)) is not None and s.secs >= waits_after]
    parts = [culprit_text(t) for t in culprits]
    if alarm.end_of_run:
        head = "end of run: the chief has reached the final step; gave up waiting for the last report of " \
               + _names(culprits)
    elif alarm.no_step_secs is not None:
        head = f"hang: no global step for {alarm.no_step_secs:.0f} s" + (
            f" (at step {alarm.step})" if alarm.step is not None else " (none yet)")
    else:
        head, parts[0] = f"hang: {parts[0]}", None
    if waiting:
        creating = all((s := alarm.silence(t)) and s.in_session_creation for t in waiting)
        verb = "wait" if len(waiting) > 1 else "waits"
        parts.append(f"{_names(waiting)} {verb} {'in session creation ' if creating else ''}for "
                     f"{'it' if len(culprits) == 1 else 'them'}")
    normal = [t for t in trainers if t not in culprits and t not in waiting]
    if alarm.end_of_run and CHIEF_0 in normal:
        normal.remove(CHIEF_0)
        parts.append(f"{CHIEF_0} waits for {'it' if len(culprits) == 1 else 'them'} before its final save")
    if normal:
        parts.append(f"{_names(normal)} training normally")
    if not blockers and culprits and not normal:
        servers = [p.task for p in probes if p.task.job == PS]
        if servers:
            parts.append(f"{_names(servers)} running and accepting connections: see the stacks")
    verdict = "; ".join([head] + [p for p in parts if p])
    return Diagnosis(verdict, tuple(culprits), tuple(probes))
