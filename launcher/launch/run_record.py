"""`run.json` in the model directory: what each run of the launcher did, one entry per run, appended.

The record is typed: the dataclasses below are its schema (described in docs/run-record.md), and the file
carries `SCHEMA_VERSION`. This module alone writes the file; `read` is how anything reads it (`launcher
report`), and it checks every value against its type, so a damaged, hand-edited or older record is one
`RecordError` line (bad input, exit 2), never a traceback in the report.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from launcher.cluster import safe_files, typed_json
from launcher.cluster.errors import UserError
from launcher.cluster.typed_json import JSON, field

FILE_NAME = "run.json"
# 1: the unversioned record of earlier launchers (same fields, no "version"). 2: typed, versioned.
SCHEMA_VERSION = 2


class RecordError(UserError):
    """run.json cannot be read as a record of this schema version."""


@dataclasses.dataclass
class Session:
    time: float
    step: Optional[int] = None  # the global step it started from


@dataclasses.dataclass
class Move:
    """A task's node was lost and it was started on another."""
    from_host: Optional[str] = field(key="from", default=None)
    to: Optional[str] = None
    why: Optional[str] = None


@dataclasses.dataclass
class Attempt:
    """One process of a task. Times are Unix epoch seconds."""
    started: float
    host: Optional[str] = None
    moved: Optional[Move] = field(default=None, omit_default=True)
    first_step: Optional[float] = None
    ended: Optional[float] = None
    cause: Optional[str] = field(default=None, omit_default=True)  # why it ended, when known
    exit_code: Optional[int] = None
    local_steps: int = 0
    killed_for: Optional[str] = field(default=None, omit_default=True)  # the launcher killed it: a hang
    killed_at_end: bool = field(default=False, omit_default=True)  # ... after the chief's final save
    sessions: list[Session] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Task:
    job: str
    index: int
    exit_code: Optional[int] = None
    exit_codes: list[Optional[int]] = dataclasses.field(default_factory=list)
    restarts: int = 0
    steps: int = 0  # local steps of all its processes
    start_step: Optional[int] = None
    session_steps: list[Optional[int]] = dataclasses.field(default_factory=list)
    first_step_secs: Optional[float] = None  # from the launch to its first step
    attempts: list[Attempt] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.job}:{self.index}"


@dataclasses.dataclass
class Hang:
    detected: float
    time: Optional[float] = None
    verdict: str = ""
    culprits: list[str] = dataclasses.field(default_factory=list)
    action: str = ""
    end_of_run: bool = False
    no_step_secs: Optional[float] = None
    step: Optional[int] = None
    tasks: dict[str, JSON] = dataclasses.field(default_factory=dict)  # what each task's probe found
    stacks: dict[str, str] = dataclasses.field(default_factory=dict)  # task -> where its stacks are logged


@dataclasses.dataclass
class Straggler:
    task: str
    ratio: float
    worst_ratio: Optional[float] = None
    named_at: Optional[float] = None


@dataclasses.dataclass
class Eval:
    step: Optional[int] = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class EarlyStop:
    evaluated_step: Optional[int] = None
    reason: Optional[str] = None
    step: Optional[int] = None  # the newest checkpoint when training ended


@dataclasses.dataclass
class MembershipChange:
    """A worker joined (`launcher scale` added it), was asked to leave, or left (its process ended)."""
    time: float          # Unix epoch seconds
    task: str            # "worker:2"
    change: str          # "join", "leave" (asked to), "left" (its process ended)
    workers: int         # the run's workers after the change


@dataclasses.dataclass
class Spec:
    cluster: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    flags: dict[str, list[str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run:
    started: str  # ISO 8601, UTC
    outcome: str
    ended: Optional[str] = None
    exit_code: Optional[int] = None
    summary: Optional[str] = None
    spec: Spec = dataclasses.field(default_factory=Spec)
    model: Optional[str] = None
    train_steps: Optional[int] = None
    global_step_start: Optional[int] = None
    global_step_end: Optional[int] = None
    tasks: list[Task] = dataclasses.field(default_factory=list)
    hang_secs: Optional[float] = None
    on_hang: Optional[str] = None
    hangs: list[Hang] = dataclasses.field(default_factory=list)
    straggler_ratio: Optional[float] = None
    stragglers: list[Straggler] = dataclasses.field(default_factory=list)
    global_step_series: list[tuple[float, int]] = dataclasses.field(default_factory=list)  # (time, step)
    eval: Optional[Eval] = field(default=None, omit_default=True)
    early_stop: Optional[EarlyStop] = field(default=None, omit_default=True)
    # Workers added and removed during the run (`launcher scale`), in order; empty when none was.
    membership: list[MembershipChange] = dataclasses.field(default_factory=list)


def path(model_dir: str) -> str:
    return os.path.join(model_dir, FILE_NAME)


def parse(text: str, where: str = FILE_NAME) -> list[Run]:
    """The runs in the text of a run.json; RecordError saying what is wrong and where."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RecordError(f"{where}: not valid JSON (damaged or cut short?): {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise RecordError(f"{where}: not a run record: nested too deep") from None
    if not isinstance(data, dict) or "runs" not in data:
        raise RecordError(f"{where}: not a run record (expected an object with \"runs\")")
    version = data.get("version", 1)
    if version != SCHEMA_VERSION:
        older = type(version) is int and version < SCHEMA_VERSION
        raise RecordError(f"{where}: schema version {typed_json._show(version)}"
                          f"{' (written by an older launcher)' if older else ''}; this launcher reads version "
                          f"{SCHEMA_VERSION}")
    try:
        return typed_json.decode(list[Run], data["runs"], "runs")
    except typed_json.DecodeError as e:
        raise RecordError(f"{where}: {e}") from None


def read(model_dir: str) -> list[Run]:
    """Every run recorded so far, oldest first; [] when there is no record."""
    try:
        with safe_files.open_read(path(model_dir)) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise RecordError(f"{path(model_dir)}: not valid JSON (not UTF-8 text)") from None
    except OSError as e:
        raise RecordError(f"{path(model_dir)}: cannot read: {e.strerror}") from None
    return parse(text, path(model_dir))


def append(model_dir: str, run: Run) -> Optional[str]:
    """Add `run` to the record; written to a temporary file and renamed, so a kill leaves no half record.

    A record that cannot be read (damaged, another schema version) is kept aside under `.unreadable` and a
    fresh one started; returns why, for the user, or None."""
    note = None
    try:
        runs = read(model_dir)
    except UserError as e:  # RecordError, or a symlink planted during the run (moved aside, not followed)
        os.replace(path(model_dir), path(model_dir) + ".unreadable")  # keep it for the user, start anew
        note = f"{e}: kept as {path(model_dir)}.unreadable, a new record started"
        runs = []
    runs.append(run)
    text = json.dumps({"version": SCHEMA_VERSION, "runs": typed_json.encode(runs)}, indent=2) + "\n"
    safe_files.write_replacing(path(model_dir), text)
    return note
