"""harness.advisories on hand-made topologies: which shapes are advised against, in
what words, and where nothing is said."""

from __future__ import annotations

import pytest

from harness import advisories
from harness.advisories import (
    EVEN_MASTERS,
    FEW_STARTUP_NODES,
    REPLICAS_ON_MASTER_HOST,
    Advisory,
    even_masters,
    for_cluster,
    replicas_on_master_host,
    startup_nodes,
)
from harness.topology import NodeView, parse_cluster_nodes

M1, M2, M3 = ("a" * 40, "b" * 40, "c" * 40)
R1, R2, R3 = ("d" * 40, "e" * 40, "f" * 40)


def line(node_id: str, addr: str, role: str, master: str = "-", slots: str = "") -> str:
    return f"{node_id} {addr}@1{addr.rsplit(':', 1)[1]} {role} {master} 0 0 1 connected {slots}".rstrip()


def view(*lines: str) -> NodeView:
    return NodeView("10.0.0.1:6379", tuple(parse_cluster_nodes("\n".join(lines))))


def three_by_one(replica_hosts: tuple[str, str, str]) -> NodeView:
    return view(
        line(M1, "10.0.0.1:6379", "myself,master", slots="0-5460"),
        line(M2, "10.0.0.2:6379", "master", slots="5461-10922"),
        line(M3, "10.0.0.3:6379", "master", slots="10923-16383"),
        line(R1, f"{replica_hosts[0]}:6380", "slave", M1),
        line(R2, f"{replica_hosts[1]}:6380", "slave", M2),
        line(R3, f"{replica_hosts[2]}:6380", "slave", M3),
    )


@pytest.mark.parametrize("masters", [1, 3, 5, 7])
def test_odd_master_counts_are_not_advised(masters: int) -> None:
    assert even_masters(masters) is None


def test_even_masters_says_what_is_lost() -> None:
    adv = even_masters(4)
    assert adv is not None and adv.code == EVEN_MASTERS
    assert adv.message == (
        "4 masters: failure detection and replica elections need a majority of masters "
        "(3 of 4), so this cluster survives the loss of 1 master(s), as 3 would, and a "
        "partition into two halves of 2 leaves neither side a majority: run an odd number "
        "of masters"
    )
    two = even_masters(2)
    assert two is not None and "(2 of 2)" in two.message and "loss of 0 master(s)" in two.message


def test_every_advisory_names_its_source() -> None:
    for code in (EVEN_MASTERS, REPLICAS_ON_MASTER_HOST, FEW_STARTUP_NODES):
        assert Advisory(code, "x").source == advisories.SOURCES[code]
    # the odd-masters advice is an inference, and says so
    assert "inference" in advisories.SOURCES[EVEN_MASTERS]
    assert "majority of the master nodes are reachable" in advisories.SOURCES[EVEN_MASTERS]
    assert "B and B1 fail at the same time" in advisories.SOURCES[REPLICAS_ON_MASTER_HOST]
    assert "at least one node is" in advisories.SOURCES[FEW_STARTUP_NODES]


def test_replicas_on_other_hosts_are_fine() -> None:
    assert replicas_on_master_host(three_by_one(("10.0.0.2", "10.0.0.3", "10.0.0.1"))) is None


def test_replicas_on_their_masters_host_are_advised() -> None:
    adv = replicas_on_master_host(three_by_one(("10.0.0.1", "10.0.0.3", "10.0.0.3")))
    assert adv is not None and adv.code == REPLICAS_ON_MASTER_HOST
    assert adv.message.startswith(
        "2 master(s) have every replica on their own host: 10.0.0.1:6379 (1 replica(s)), "
        "10.0.0.3:6379 (1 replica(s)); losing that host"
    )


def test_one_replica_elsewhere_is_enough() -> None:
    v = view(
        line(M1, "10.0.0.1:6379", "myself,master", slots="0-16383"),
        line(R1, "10.0.0.1:6380", "slave", M1),
        line(R2, "10.0.0.2:6380", "slave", M1),
    )
    assert replicas_on_master_host(v) is None


def test_a_master_without_replicas_is_not_this_advisory() -> None:
    v = view(line(M1, "10.0.0.1:6379", "myself,master", slots="0-16383"))
    assert replicas_on_master_host(v) is None


def test_startup_nodes() -> None:
    assert startup_nodes(3, 3) is None and startup_nodes(6, 3) is None
    adv = startup_nodes(1, 3)
    assert adv is not None and adv.code == FEW_STARTUP_NODES
    assert adv.message.startswith("1 startup node(s) for 3 masters: ")


def test_for_cluster_on_one_machine_says_nothing_of_hosts() -> None:
    same = three_by_one(("10.0.0.1", "10.0.0.2", "10.0.0.3"))  # every replica beside its master
    assert for_cluster(same, hosts_meaningful=False) == []
    codes = [a.code for a in for_cluster(same, hosts_meaningful=True, seeds=1)]
    assert codes == [REPLICAS_ON_MASTER_HOST, FEW_STARTUP_NODES]


def test_for_cluster_counts_masters_with_slots() -> None:
    v = view(
        line(M1, "10.0.0.1:6379", "myself,master", slots="0-8191"),
        line(M2, "10.0.0.2:6379", "master", slots="8192-16383"),
        line(M3, "10.0.0.3:6379", "master"),  # no slots: not a master of the majority
    )
    assert [a.code for a in for_cluster(v, hosts_meaningful=True)] == [EVEN_MASTERS]
