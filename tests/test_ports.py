"""Local port resolution: port 0 becomes a free port, and only loopback hosts and free ports are accepted."""

from __future__ import annotations

import socket

import pytest

from launcher.cluster import free_ports
from launcher.launch import ports
from launcher.cluster.errors import SpecError
from launcher.cluster.spec import Address, TaskId, from_json


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_port_zero_tasks_get_distinct_ports_and_explicit_ports_are_kept():
    explicit = free_port()
    spec = from_json({"chief": ["localhost:0"], "worker": ["localhost:0", "127.0.0.1:0"],
                      "ps": [f"localhost:{explicit}"]}, "s.json")
    resolved = ports.resolve_local(spec)
    picked = [resolved.address(TaskId(job, i)).port for job, i in (("chief", 0), ("worker", 0), ("worker", 1))]
    assert all(port > 0 for port in picked)
    assert len(set(picked + [explicit])) == 4
    assert resolved.address(TaskId("ps", 0)) == Address("localhost", explicit)
    assert resolved.address(TaskId("worker", 1)).host == "127.0.0.1"
    assert spec.address(TaskId("chief", 0)).port == 0  # the input spec is not changed


@pytest.mark.parametrize("host", ["10.1.2.3", "example.com"])
def test_non_loopback_host_is_refused(host):
    spec = from_json({"chief": ["localhost:0"], "worker": [f"{host}:0"]}, "s.json")
    with pytest.raises(SpecError) as raised:
        ports.resolve_local(spec)
    assert str(raised.value).startswith("s.json: cluster.worker[0]: ")
    assert f"host '{host}' is not loopback" in str(raised.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_port_in_use_is_refused(host):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        spec = from_json({"chief": ["localhost:0"], "ps": [f"{host}:{port}"]}, "s.json")
        with pytest.raises(SpecError) as raised:
            ports.resolve_local(spec)
    assert str(raised.value) == f"s.json: cluster.ps[0]: port {port} on {host} is already in use"


def test_picked_ports_are_free_distinct_and_below_the_ephemeral_range():
    start = free_ports.ephemeral_start()
    picked = free_ports.pick_many(20)
    assert len(set(picked)) == 20
    assert all(free_ports.LOW <= p < start for p in picked), (picked, start)
    for port in picked:  # each one can be bound now, as the task's server will
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_taken_meanwhile_or_listed_is_never_picked(monkeypatch):
    with socket.socket() as holder:
        holder.bind(("", free_ports.LOW))
        holder.listen(1)
        monkeypatch.setattr(free_ports.random, "randrange", lambda low, high: low)  # always the held port
        port = free_ports.pick({free_ports.LOW + 1})
    assert port != free_ports.LOW and port != free_ports.LOW + 1  # portpicker's own pick, after the tries


def test_without_room_below_the_ephemeral_range_portpicker_picks(monkeypatch):
    monkeypatch.setattr(free_ports, "ephemeral_start", lambda: free_ports.LOW + 10)
    port = free_ports.pick()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
