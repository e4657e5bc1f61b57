"""Conformance: the cluster a server forms looks like Redis Cluster from every node."""

from __future__ import annotations

import pytest

from harness import Cluster, checkers, key_for_slot
from harness.wait import wait_for


def test_bringup_topology_is_healthy(cluster: Cluster) -> None:
    """Full coverage, agreement, unique epochs, replicas on live masters, consistent INFO."""
    snap = cluster.snapshot()
    verdict = checkers.healthy(snap)
    assert verdict.ok, f"{verdict}\n{snap.describe()}"


@pytest.mark.cluster(masters=3, replicas=2)
def test_every_replica_follows_its_master_and_is_synced(cluster: Cluster) -> None:
    view = cluster.view(cluster.nodes[0])
    by_id = view.by_id()
    for r in cluster.initial_replicas:
        entry = by_id[r.node_id or ""]
        want = cluster.initial_master_of(r)
        assert entry.is_replica and entry.master_id == want.node_id, (
            f"{r.addr} should replicate {want.addr}, CLUSTER NODES says {sorted(entry.flags)} of {entry.master_id}"
        )
        rep = cluster.replication_info(r)
        assert rep.get("role") == "slave", f"{r.addr} INFO replication role={rep.get('role')}"
        assert rep.get("master_link_status") == "up", (
            f"{r.addr} master_link_status={rep.get('master_link_status')}"
        )


@pytest.mark.requires("cluster_shards")
def test_cluster_shards_describes_the_same_map(cluster: Cluster) -> None:
    # Some servers report a replica whose offset is still 0 as "loading": give every
    # shard a replicated write first, then expect every node to be seen "online".
    client = cluster.client()
    for m in cluster.initial_masters:
        me = cluster.view(m, with_shards=False).myself
        assert me is not None
        client.set(key_for_slot(me.slots[0][0], prefix="shards:"), "x")
        m.call("WAIT", cluster.spec.replicas, 2000)

    def all_online() -> tuple[bool, str]:
        bad = []
        for n in cluster.nodes:
            for shard in cluster.view(n).shards or ():
                bad += [
                    f"{n.addr} sees {sn.endpoint}:{sn.port} {sn.health}"
                    for sn in shard.nodes
                    if sn.health != "online"
                ]
        return not bad, "; ".join(bad)

    wait_for(all_online, 10, "every shard member reported online by every node")
    for n in cluster.nodes:
        view = cluster.view(n)
        assert view.shards is not None
        assert len([s for s in view.shards if s.slots]) == cluster.spec.masters, [
            s.slots for s in view.shards
        ]
        for shard in view.shards:
            assert len(shard.nodes) == 1 + cluster.spec.replicas, (
                f"{n.addr}: shard {shard.slots} has {shard.nodes}"
            )
        verdict = checkers.shards_match_nodes(view)
        assert verdict.ok, str(verdict)


@pytest.mark.cluster(masters=1, replicas=0)
def test_single_master_cluster_serves_all_slots(cluster: Cluster) -> None:
    client = cluster.client()
    for i in range(50):
        client.set(f"single:{i}", i)
    assert int(cluster.nodes[0].call("DBSIZE")) == 50  # type: ignore[arg-type]


@pytest.mark.cluster(masters=2, replicas=0)
def test_epochs_stay_unique_after_bump(cluster: Cluster) -> None:
    """CLUSTER BUMPEPOCH gives the node a fresh epoch; others learn it; epochs stay unique."""
    node = cluster.nodes[0]  # epoch 1 of 1..2: not the highest, so the bump must happen
    before = max(e.config_epoch for e in cluster.view(node).nodes)
    reply = str(node.call("CLUSTER", "BUMPEPOCH"))
    assert reply.startswith("BUMPED"), reply
    own_epoch = wait_for(
        lambda: _epoch_seen_by_all(cluster, node),
        10,
        f"{node.addr}'s new epoch known to all nodes",
    )
    assert own_epoch > before
    verdict = checkers.healthy(cluster.snapshot())
    assert verdict.ok, str(verdict)


def _epoch_seen_by_all(cluster: Cluster, node: object) -> tuple[bool, int]:
    epochs = set()
    for n in cluster.nodes:
        entry = cluster.view(n).by_id()[getattr(node, "node_id", "")]
        epochs.add(entry.config_epoch)
    return len(epochs) == 1, max(epochs)
