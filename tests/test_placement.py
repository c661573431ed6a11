"""The Ray backend's placement plan, a decision on plain records: `--ray_placement spread` puts the training
tasks on distinct nodes and the ps apart; `pack` fills each node before the next; a cluster without room
is refused naming what is missing. (On a real Ray cluster: tests/test_ray_hosts.py.)"""

from __future__ import annotations

import pytest

from launcher.cluster.settings import PACK, SPREAD
from launcher.cluster.spec import TaskId
from launcher.launch.backends import placement

LOCAL4 = [TaskId("chief", 0), *(TaskId("worker", i) for i in range(3)), TaskId("ps", 0), TaskId("ps", 1)]


def _nodes(cpus: float, count: int = 3) -> list[placement.Node]:
    return [placement.Node(f"id{n}", f"10.0.0.{n}", {"CPU": cpus}) for n in range(1, count + 1)]


def _where(plan: dict) -> dict[str, str]:
    return {task.name: node.address for task, node in plan.items()}


def test_spread_puts_training_tasks_on_every_node_and_the_ps_apart():
    where = _where(placement.plan(LOCAL4, {"CPU": 0.5}, _nodes(4), SPREAD))
    training = {where[t] for t in where if t.startswith(("chief", "worker"))}
    assert training == {"10.0.0.1", "10.0.0.2", "10.0.0.3"}
    assert where["ps:0"] != where["ps:1"]


def test_pack_fills_the_first_node_before_the_next():
    where = _where(placement.plan(LOCAL4, {"CPU": 0.5}, _nodes(2), PACK))
    # 2 CPUs a node, half a CPU a task: four tasks on the first node, the other two on the second.
    assert sorted(where.values()) == ["10.0.0.1"] * 4 + ["10.0.0.2"] * 2
    assert len(set(_where(placement.plan(LOCAL4[:3], {"CPU": 0.5}, _nodes(2), PACK)).values())) == 1


def test_a_plan_takes_what_it_places_from_the_nodes():
    nodes = _nodes(2)
    placement.plan(LOCAL4, {"CPU": 1.0}, nodes, SPREAD)
    assert [node.free["CPU"] for node in nodes] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("how", [SPREAD, PACK])
def test_a_cluster_without_room_is_refused_naming_what_is_missing(how):
    with pytest.raises(placement.Unplaceable, match=r"lacks CPU: 3 missing \(6 tasks x 1.5 = 9 needed, 6 free"):
        placement.plan(LOCAL4, {"CPU": 1.5}, _nodes(2), how)
    # Enough in total, but no node has room for a whole task.
    with pytest.raises(placement.Unplaceable, match="no node has room for"):
        placement.plan(LOCAL4[:2], {"CPU": 1.5}, _nodes(1, count=3), how)
