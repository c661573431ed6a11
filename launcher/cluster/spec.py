"""Cluster specs: where they are found, what they may say, and the checks that run before any task starts.

A spec is JSON. Its cluster part has TensorFlow's own shape, the object that `TF_CONFIG["cluster"]` holds
(job name -> list of "host:port"), so one can be pasted from or into TF_CONFIG. Around it a spec may carry
per-role absl flags:

    {"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"]},
     "flags": {"worker": ["--learning_rate=0.05"]}}

A bare cluster object (no "cluster" key) is a spec too. Port 0 means "pick a free port" (see `ports`).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
import pathlib
import sys
from typing import Iterator, Mapping, Sequence

from launcher.cluster.errors import SpecError

CHIEF, WORKER, PS, EVALUATOR = "chief", "worker", "ps", "evaluator"
JOBS = (CHIEF, WORKER, PS, EVALUATOR)
# The evaluator is TensorFlow's odd one out: it is not part of the training cluster that servers see.
TRAINING_JOBS = (CHIEF, WORKER, PS)

# Limits on what a spec may be: far beyond any real cluster, well within what this process can handle.
MAX_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 16       # {"cluster": {"worker": [...]}} nests 3 deep
MAX_TASKS = 1000     # each task is a process and a port

BUNDLED_DIRS = (
    pathlib.Path(__file__).resolve().parents[2] / "cluster_specs",  # a checkout or editable install
    pathlib.Path(sys.prefix) / "share" / "launcher" / "cluster_specs",  # a regular install (setup.cfg)
)


@dataclasses.dataclass(frozen=True, order=True)
class TaskId:
    job: str
    index: int

    @property
    def name(self) -> str:
        return f"{self.job}:{self.index}"

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_address(text: object, source: str, field: str) -> Address:
    """`host:port` (IPv6 hosts in brackets) to an Address, or a SpecError naming `field`."""
    if not isinstance(text, str):
        raise SpecError(source, field, f"an address must be a string \"host:port\", got {text!r}")
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text or (":" in host and not text.startswith("[")):
        raise SpecError(source, field, f"{text!r} is not host:port")
    if not (port_text.isascii() and port_text.isdigit()):
        raise SpecError(source, field, f"port {port_text!r} in {text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise SpecError(source, field, f"port {port} in {text!r} is out of range (0-65535)")
    return Address(host, port)


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """A checked spec. `cluster` maps each job to its task addresses; `flags` each role to its flags."""

    cluster: Mapping[str, Sequence[Address]]
    flags: Mapping[str, Sequence[str]]
    source: str = "<spec>"
    # Where each flag was written, per role, parallel to `flags`: "spec.json: flags.worker[0]" for the spec's
    # own, "--worker_flags[1]" for the command line's. A task that refuses a flag names it so.
    origins: Mapping[str, Sequence[str]] = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_roles(self.cluster, self.source)
        if self.origins is None:
            object.__setattr__(self, "origins", {job: [f"{self.source}: flags.{job}[{i}]" for i in range(len(f))]
                                                 for job, f in self.flags.items()})

    def tasks(self) -> Iterator[TaskId]:
        for job in JOBS:
            for index in range(len(self.cluster.get(job, ()))):
                yield TaskId(job, index)

    def address(self, task: TaskId) -> Address:
        return self.cluster[task.job][task.index]

    def count(self, job: str) -> int:
        return len(self.cluster.get(job, ()))

    def cluster_dict(self, *, training_only: bool = False) -> dict[str, list[str]]:
        """The cluster as TF_CONFIG and `tf.train.ClusterSpec` want it."""
        jobs = TRAINING_JOBS if training_only else JOBS
        return {job: [str(a) for a in self.cluster[job]] for job in jobs if job in self.cluster}

    def role_flags(self, job: str) -> list[str]:
        return list(self.flags.get(job, ()))

    def flag_origins(self, job: str) -> list[str]:
        return list(self.origins.get(job, ()))

    def role_flags_with_origins(self) -> Iterator[tuple[str, str, str]]:
        """(role, where it was written, flag) for every per-role flag."""
        for job, values in self.flags.items():
            yield from ((job, where, value) for where, value in zip(self.origins[job], values))

    def replace_addresses(self, addresses: Mapping[TaskId, Address]) -> ClusterSpec:
        cluster = {job: [addresses.get(TaskId(job, i), a) for i, a in enumerate(addrs)]
                   for job, addrs in self.cluster.items()}
        return dataclasses.replace(self, cluster=cluster)

    def with_workers(self, count: int, host: str) -> ClusterSpec:
        """This spec with `count` workers: the added ones at `host`, port 0 (to be picked by the backend)."""
        workers = list(self.cluster.get(WORKER, ()))[:count]
        workers += [Address(host, 0)] * (count - len(workers))
        cluster = {job: list(addrs) for job, addrs in self.cluster.items() if job != WORKER}
        if workers:
            cluster[WORKER] = workers
        return dataclasses.replace(self, cluster={job: cluster[job] for job in JOBS if job in cluster})

    def with_flags(self, extra: Mapping[str, Sequence[str]]) -> ClusterSpec:
        """This spec with `extra` flags (the command line's `--<role>_flags`) after the spec's own, per role
        (later flags win in absl)."""
        for job, values in extra.items():
            if values and not self.count(job):
                raise SpecError(self.source, "", f"--{job}_flags given, but the spec has no {job} task")
            for i, value in enumerate(values):
                check_flag_syntax(value, f"--{job}_flags[{i}]", "")
        merged = {job: [*self.flags.get(job, ()), *extra.get(job, ())] for job in JOBS}
        origins = {job: [*self.flag_origins(job), *(f"--{job}_flags[{i}]" for i in range(len(extra.get(job, ()))))]
                   for job in JOBS}
        return dataclasses.replace(self, flags={job: f for job, f in merged.items() if f},
                                   origins={job: o for job, o in origins.items() if o})

    def to_json(self) -> dict:
        return {"cluster": self.cluster_dict(), "flags": {job: list(f) for job, f in self.flags.items()}}


def _check_roles(cluster: Mapping[str, Sequence[Address]], source: str) -> None:
    tasks = sum(len(addresses) for addresses in cluster.values())
    if tasks > MAX_TASKS:
        raise SpecError(source, "cluster", f"{tasks} tasks: a spec may have at most {MAX_TASKS}")
    chiefs = len(cluster.get(CHIEF, ()))
    if chiefs != 1:
        raise SpecError(source, "cluster.chief",
                        "a spec needs exactly one chief" + (f", it has {chiefs}" if chiefs else ", it has none"))
    if len(cluster.get(EVALUATOR, ())) > 1:
        raise SpecError(source, "cluster.evaluator",
                        f"a spec may have at most one evaluator, it has {len(cluster[EVALUATOR])}")
    seen: dict[tuple[str, int], tuple[str, Address]] = {}
    for job, addresses in cluster.items():
        for index, address in enumerate(addresses):
            field = f"cluster.{job}[{index}]"
            hosts = _resolved(address.host) if address.port else (address.host,)  # port 0: picked, never shared
            for host in hosts:
                if address.port and (host, address.port) in seen:
                    other, written = seen[(host, address.port)]
                    alias = "" if written == address else f" as '{written}', the same address"
                    raise SpecError(source, field, f"address '{address}' is used twice (also {other}{alias})")
            for host in hosts:
                seen[(host, address.port)] = (field, address)


@functools.lru_cache(maxsize=4096)
def _resolved(host: str) -> tuple[str, ...]:
    """The addresses `host` stands for on this machine, with the name itself: two names of one address are
    one address ("localhost" and 127.0.0.1, "::1" and "0:0:0:0:0:0:0:1"). Names are looked up in the hosts
    file, where localhost and this machine's own names are; a name only DNS knows stands for itself, so
    checking a spec sends nothing over the network."""
    try:
        return (host, str(ipaddress.ip_address(host)))
    except ValueError:
        pass
    return tuple(dict.fromkeys([host, *_hosts_file().get(host.lower(), ())]))


@functools.lru_cache(maxsize=1)
def _hosts_file(path: str = "/etc/hosts") -> dict[str, tuple[str, ...]]:
    """Name -> its addresses, from the hosts file (missing or unreadable: none)."""
    names: dict[str, list[str]] = {}
    try:
        with open(path, errors="replace") as f:
            lines = f.read(1 << 20).splitlines()
    except OSError:
        return {}
    for line in lines:
        fields = line.split("#", 1)[0].split()
        try:
            address = str(ipaddress.ip_address(fields[0].split("%")[0])) if fields else None
        except ValueError:
            continue
        for name in fields[1:]:
            names.setdefault(name.lower(), []).append(address)
    return {name: tuple(addresses) for name, addresses in names.items()}


def from_json(data: object, source: str) -> ClusterSpec:
    """Check a decoded JSON spec; every problem is a SpecError naming the field and value."""
    if not isinstance(data, dict):
        raise SpecError(source, "", f"a spec must be a JSON object, got {type(data).__name__}")
    if "cluster" in data:
        unknown = sorted(set(data) - {"cluster", "flags"})
        if unknown:
            raise SpecError(source, unknown[0], "unknown key (a spec has \"cluster\" and \"flags\")")
        cluster_data, flags_data = data["cluster"], data.get("flags", {})
    else:
        cluster_data, flags_data = data, {}
    cluster: dict[str, list[Address]] = {}
    for job, field, addresses in _by_job(cluster_data, source, "cluster", "job name", "\"host:port\""):
        if addresses:
            cluster[job] = [parse_address(a, source, f"{field}[{i}]") for i, a in enumerate(addresses)]
    flags: dict[str, list[str]] = {}
    for role, field, values in _by_job(flags_data, source, "flags", "role", "\"--name=value\" strings"):
        for i, value in enumerate(values):
            check_flag_syntax(value, source, f"{field}[{i}]")
        flags[role] = list(values)
    return ClusterSpec(cluster=cluster, flags=flags, source=source)


def _by_job(data: object, source: str, section: str, noun: str, items: str) -> Iterator[tuple[str, str, list]]:
    """(job, field, list) for each entry of a JSON object that maps job names to lists."""
    if not isinstance(data, dict):
        raise SpecError(source, section, f"must be an object of {noun} -> list of {items}, got {data!r}")
    for job, values in data.items():
        field = f"{section}.{job}"
        if job not in JOBS:
            raise SpecError(source, field, f"unknown {noun} {job!r} (known: {', '.join(JOBS)})")
        if not isinstance(values, list):
            raise SpecError(source, field, f"must be a list of {items}, got {values!r}")
        yield job, field, values


def check_flag_syntax(value: object, source: str, field: str) -> None:
    if not isinstance(value, str) or not value.startswith("--") or len(value) < 3 or value[2] in "-=":
        raise SpecError(source, field, f"{value!r} is not a flag (\"--name=value\")")


def find(name_or_path: str) -> pathlib.Path:
    """A spec file by path, or by bare name among the bundled specs (`local2` or `local2.json`)."""
    path = pathlib.Path(os.path.expanduser(name_or_path))
    if path.is_file():
        return path
    if path.name == name_or_path:  # a bare name: look among the bundled specs
        for directory in BUNDLED_DIRS:
            for candidate in (directory / name_or_path, directory / f"{name_or_path}.json"):
                if candidate.is_file():
                    return candidate
    bundled = sorted({p.stem for d in BUNDLED_DIRS if d.is_dir() for p in d.glob("*.json")})
    raise SpecError(name_or_path, "", "no such spec file" +
                    (f" (bundled specs: {', '.join(bundled)})" if bundled else ""))


def _nesting(text: str) -> int:
    """How deep `text`'s arrays and objects nest (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_duplicate_keys(source: str):
    def pairs_hook(pairs: list[tuple[str, object]]) -> dict:
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                raise SpecError(source, "", f"key {key!r} appears twice in one object (which one was meant?)")
            seen[key] = value
        return seen
    return pairs_hook


def parse_text(text: str, source: str) -> ClusterSpec:
    """Check the text of a spec: size, nesting and duplicate keys first (hostile input never reaches the
    parser's limits), then what it says (`from_json`)."""
    if len(text) > MAX_BYTES:
        raise SpecError(source, "", f"{len(text)} characters: a spec may have at most {MAX_BYTES}")
    if _nesting(text) > MAX_DEPTH:
        raise SpecError(source, "", f"nested {_nesting(text)} levels deep: a spec nests at most {MAX_DEPTH}")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys(source))
    except json.JSONDecodeError as e:
        raise SpecError(source, "", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:  # numbers too long for int(), or the parser's own limits
        raise SpecError(source, "", f"not a usable JSON spec: {str(e).splitlines()[0][:200]}") from None
    return from_json(data, source)


def is_bundled_name(name_or_path: str) -> bool:
    """Whether `name_or_path` names a bundled spec (`local4`), not a file: every installation has it."""
    path = pathlib.Path(os.path.expanduser(name_or_path))
    return not path.is_file() and path.name == name_or_path and any(
        (d / n).is_file() for d in BUNDLED_DIRS for n in (name_or_path, f"{name_or_path}.json"))


def load(name_or_path: str) -> ClusterSpec:
    """Find, read and check a spec file."""
    path = find(name_or_path)
    source = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SpecError(source, "", f"{path.stat().st_size} bytes: a spec may have at most {MAX_BYTES}")
        text = path.read_text()
    except OSError as e:
        raise SpecError(source, "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(source, "", "not valid JSON: not UTF-8 text") from None
    return parse_text(text, source)
