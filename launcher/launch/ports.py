"""Port resolution for runs on this machine.

Port 0 in a spec means "pick a free one". Ports are picked once, by the launcher, before any task starts,
so every task is handed the same resolved spec; a picked port could in principle be taken before its task
binds it, which is why picking happens as late as possible and in one place, below the kernel's ephemeral
range (`cluster.free_ports`).
"""

from __future__ import annotations

import ipaddress
import socket

from launcher.cluster import free_ports
from launcher.cluster.errors import SpecError
from launcher.cluster.spec import Address, ClusterSpec, TaskId

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def in_use(address: Address) -> bool:
    """Whether binding `address` fails now (another process holds the port)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address.host, address.port))
        except OSError:
            return True
    return False


def resolve_local(spec: ClusterSpec) -> ClusterSpec:
    """Check that `spec` can run on this machine and give every port-0 task a free port.

    Only loopback hosts are accepted: a local run must not listen on, or send to, anything else.
    """
    picked = {}
    taken = {spec.address(t).port for t in spec.tasks()}  # explicit ports are not bound yet
    for task in spec.tasks():
        address = spec.address(task)
        field = f"cluster.{task.job}[{task.index}]"
        if not is_loopback(address.host):
            raise SpecError(spec.source, field,
                            f"host {address.host!r} is not loopback; a local run uses localhost only")
        if address.port == 0:
            port = free_ports.pick(taken)
            taken.add(port)
            picked[task] = Address(address.host, port)
        elif in_use(address):
            raise SpecError(spec.source, field, f"port {address.port} on {address.host} is already in use")
    return spec.replace_addresses(picked)


def pick_added(spec: ClusterSpec, tasks: list[TaskId]) -> ClusterSpec:
    """During a run: free ports for `tasks` (added by `launcher scale`), none of them a port of the spec.
    The others' ports are in use by their own tasks, so they are not checked again."""
    taken = {spec.address(t).port for t in spec.tasks()}
    picked = {}
    for task in tasks:
        port = free_ports.pick(taken)
        taken.add(port)
        picked[task] = Address(spec.address(task).host, port)
    return spec.replace_addresses(picked)
