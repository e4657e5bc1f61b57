"""Conformance: the cluster a server forms, as every node reports it. When the cluster is
stable each of the 16384 slots is served by exactly one master and every node agrees on
the map, the roles and the (unique) config epochs; ``CLUSTER NODES``, ``CLUSTER INFO``,
``CLUSTER SHARDS`` and ``INFO replication`` tell the same story.

Source: Redis Cluster specification, "Overview of Redis Cluster main components" ("Key
distribution model", "Cluster node attributes") and "Configuration handling, propagation,
and failovers" ("Configuration epoch", "Hash slots configuration propagation", "configEpoch
conflicts resolution algorithm"); the ``CLUSTER NODES``, ``CLUSTER INFO``, ``CLUSTER SHARDS``
and ``CLUSTER BUMPEPOCH`` pages.
"""

from __future__ import annotations

import pytest

from harness import Cluster, checkers, key_for_slot
from harness.backends import Node
from harness.testing import wait_for

# these tests only read, or write keys (flushed between tests): they share a cluster
pytestmark = pytest.mark.shares_cluster


def test_bringup_topology_is_healthy(cluster: Cluster) -> None:
    """MUST, once formed and stable: every slot served by exactly one master, every node
    agreeing on the slot map and the membership, unique config epochs among masters,
    replicas attached to live masters, ``cluster_state:ok`` on every node, and ``CLUSTER
    INFO`` counters (slots assigned/ok/pfail/fail, known nodes, size, a current epoch not
    below any config epoch) matching ``CLUSTER NODES``.

    Redis Cluster specification, "Key distribution model" (a stable cluster serves each
    slot from a single node), "Hash slots configuration propagation" (all nodes converge
    on one owner per slot), "configEpoch conflicts resolution algorithm" (masters end with
    distinct config epochs); the ``CLUSTER INFO`` and ``CLUSTER NODES`` pages.
    """
    snap = cluster.snapshot()
    verdict = checkers.healthy(snap)
    assert verdict.ok, f"{verdict}\n{snap.describe()}"


@pytest.mark.any_shape
@pytest.mark.cluster(masters=3, replicas=2)
def test_every_replica_follows_its_master_and_is_synced(cluster: Cluster) -> None:
    """MUST: a replica is listed with the ``slave`` flag and its master's node ID, and its
    own ``INFO replication`` agrees (role ``slave``, master link ``up``).

    Redis Cluster specification, "Cluster node attributes" (each node records the master of
    a replica); the ``CLUSTER NODES`` page; the ``INFO`` page (replication section).
    """
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


@pytest.mark.destructive("writes keys of fixed names, outside the run's prefix")
@pytest.mark.requires("cluster_shards")
def test_cluster_shards_describes_the_same_map(cluster: Cluster) -> None:
    """MUST (servers with ``CLUSTER SHARDS``, Redis 7.0+): every node describes one shard
    per master with its slots and all its members, reports healthy members ``online``, and
    the shards say the same as ``CLUSTER NODES``.

    The ``CLUSTER SHARDS`` page.
    """
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


@pytest.mark.whole_keyspace("counts every key of the node")
@pytest.mark.cluster(masters=1, replicas=0)
def test_single_master_cluster_serves_all_slots(cluster: Cluster) -> None:
    """MUST: one master may own all 16384 slots and then serves every key itself.

    Redis Cluster specification, "Key distribution model".
    """
    client = cluster.client()
    for i in range(50):
        client.set(f"single:{i}", i)
    assert int(cluster.nodes[0].call("DBSIZE")) == 50  # type: ignore[arg-type]


@pytest.mark.destructive("CLUSTER BUMPEPOCH changes a node's config epoch")
@pytest.mark.cluster(masters=2, replicas=0)
def test_epochs_stay_unique_after_bump(cluster: Cluster) -> None:
    """MUST: ``CLUSTER BUMPEPOCH`` on a node without the greatest config epoch replies
    ``BUMPED`` and gives it a new, greater epoch; every node learns it through gossip, and
    the epochs stay unique.

    The ``CLUSTER BUMPEPOCH`` page; Redis Cluster specification, "Configuration epoch"
    (masters advertise their configEpoch in every heartbeat) and "configEpoch conflicts
    resolution algorithm" (all masters must end with different epochs).
    """
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


def _epoch_seen_by_all(cluster: Cluster, node: Node) -> tuple[bool, int]:
    """Probe: does every node list the same config epoch for ``node``?"""
    epochs = set()
    for n in cluster.nodes:
        entry = cluster.view(n).by_id()[node.node_id or ""]
        epochs.add(entry.config_epoch)
    return len(epochs) == 1, max(epochs)
