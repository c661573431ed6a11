"""A bed of hosts on this machine: each host a network namespace with one address on a private bridge.

    bridge namespace <prefix>br:   br0  ── p1 ── p2 ── p3 ...   (ports of a Linux bridge, no address)
    host namespace  <prefix>h1:    lo, eth0 10.213.0.1/24        (the other end of p1)
    host namespace  <prefix>h2:    lo, eth0 10.213.0.2/24        ...

Nothing is created in the root namespace: every veth pair is made inside the bridge namespace and one end
moved into its host. No host has a default route, so the only addresses a host can reach are its own
loopback and the other hosts of the bed; no packet ever leaves the bridge. The bridge has a namespace of its
own so that it is no interface of this machine either. Names carry a per-run prefix, so beds of parallel
runs never clash (interface names are per namespace and need none).

Every host sees this machine's filesystem, as a shared model directory (NFS) would give on real machines.
`cut(n)` / `restore(n)` take host n's bridge port down and up: a partition of that host alone.

Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip`; the fixture skips with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from typing import Mapping, Optional, Sequence

SUBNET = "10.213.0"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def unavailable() -> Optional[str]:
    """Why a bed cannot be built here, or None."""
    if not shutil.which("ip"):
        return "the host bed needs the `ip` command (iproute2)"
    if os.geteuid() != 0:
        return "the host bed needs root (network namespaces and a bridge)"
    probe = f"hbprobe{uuid.uuid4().hex[:8]}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        return f"network namespaces are not allowed here: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


class Host:
    def __init__(self, bed: "HostBed", number: int):
        self.bed = bed
        self.number = number
        self.netns = f"{bed.prefix}h{number}"
        self.address = f"{SUBNET}.{number}"

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` as run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None, timeout: float = 120,
            check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), env=dict(env) if env is not None else None,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def popen(self, argv: Sequence[str], env: Optional[Mapping[str, str]] = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(argv), env=dict(env) if env is not None else None,
                                start_new_session=True, **kwargs)

    def pids(self) -> list[int]:
        """Every process whose network namespace is this host's (the kernel's view, not anyone's record)."""
        done = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def kill_all(self, signum: int = signal.SIGKILL) -> list[int]:
        """Signal every process of this host at once: a lost machine for SIGKILL. Returns the pids."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        return pids

    def cut(self) -> None:
        """Take this host's bridge port down: it reaches nobody and nobody reaches it."""
        _ip("-n", self.bed.bridge_netns, "link", "set", f"p{self.number}", "down")

    def restore(self) -> None:
        _ip("-n", self.bed.bridge_netns, "link", "set", f"p{self.number}", "up")

    def __repr__(self) -> str:
        return f"Host({self.number}, {self.address})"


class HostBed:
    def __init__(self, count: int, prefix: Optional[str] = None):
        if not 1 <= count <= 250:
            raise ValueError(f"a bed holds 1 to 250 hosts, not {count}")
        self.prefix = prefix or f"hb{uuid.uuid4().hex[:8]}"
        self.bridge_netns = f"{self.prefix}br"
        self.hosts = [Host(self, n) for n in range(1, count + 1)]
        self._created: list[str] = []

    def __getitem__(self, number: int) -> Host:
        """Host `number`, counted from 1 like the addresses."""
        return self.hosts[number - 1]

    def up(self) -> "HostBed":
        try:
            self._add_netns(self.bridge_netns)
            br = ("-n", self.bridge_netns)
            _ip(*br, "link", "set", "lo", "up")
            _ip(*br, "link", "add", "br0", "type", "bridge")
            _ip(*br, "link", "set", "br0", "up")
            for host in self.hosts:
                self._add_netns(host.netns)
                port = f"p{host.number}"
                # Made inside the bridge namespace, one end moved straight into the host: never in the root.
                _ip(*br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
                _ip(*br, "link", "set", port, "master", "br0")
                _ip(*br, "link", "set", port, "up")
                h = ("-n", host.netns)
                _ip(*h, "link", "set", "lo", "up")
                _ip(*h, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip(*h, "link", "set", "eth0", "up")
        except BaseException:
            self.down()
            raise
        return self

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)

    def pids(self) -> list[int]:
        return [pid for host in self.hosts for pid in host.pids()]

    def tasks(self) -> dict[str, tuple[int, int]]:
        """Task name ("ps:0") -> (host number, pid) of its process: the kernel's pid lists of the hosts, and
        each task process's own TF_CONFIG (not anyone's record of where it was placed)."""
        import json

        import psutil

        found = {}
        for host in self.hosts:
            for pid in host.pids():
                try:
                    proc = psutil.Process(pid)
                    if "launcher.task" not in proc.cmdline():
                        continue
                    task = json.loads(proc.environ()["TF_CONFIG"])["task"]
                except (psutil.NoSuchProcess, psutil.ZombieProcess, KeyError):
                    continue
                found[f"{task['type']}:{task['index']}"] = (host.number, pid)
        return found

    def down(self) -> None:
        """Kill every process in the bed's namespaces, then delete them (the veths go with them)."""
        for host in self.hosts:
            if host.netns in self._created:
                host.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(h.pids() for h in self.hosts if h.netns in self._created):
            time.sleep(0.1)
        for host in self.hosts:
            if host.netns in self._created:
                host.kill_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(h.pids() for h in self.hosts if h.netns in self._created):
            time.sleep(0.1)  # a killed process leaves its namespace only once it is reaped
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        self._created.clear()

    def __enter__(self) -> "HostBed":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()


def host_bed(count: int):
    """A pytest fixture factory: `bed3 = host_bed(3)` in a test module gives tests a fresh bed of 3 hosts,
    torn down after the test whatever happened; skipped where namespaces are not allowed."""
    import pytest

    @pytest.fixture
    def fixture():
        reason = unavailable()
        if reason:
            pytest.skip(reason)
        with HostBed(count) as bed:
            yield bed

    return fixture
