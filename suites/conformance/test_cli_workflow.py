"""Conformance: the server's own cluster tool does what its documentation says, on the
server it ships with: ``redis-cli --cluster create`` forms a cluster (the tool picks the
masters and places the replicas), ``add-node`` joins an empty master, ``reshard`` moves
slots with their keys to it, and ``check`` then finds every slot covered, every node
agreeing and nothing left open. The harness's own checkers must reach the same verdict.

Source: redis.io, "Scale with Redis Cluster" (the cluster tutorial: "Create a Redis
Cluster", "Reshard the cluster", "Add a new node", "Remove a node"); the tool is the one
of the server under test (``valkey-cli`` for Valkey), found beside the server binary or
in the nodes' image, of the server's exact version.
"""

from __future__ import annotations

import pytest

from harness import Cluster, checkers, key_slot
from harness.clitool import ClusterCli
from harness.plugin import Metrics
from harness.testing import wait_for

RESHARDED = 100  # the tutorial moves 1000 of 16384; 100 keep the test short
KEYS = 500


@pytest.mark.destructive("forms the cluster with the tool, adds a node, moves slots")
@pytest.mark.cluster(masters=3, replicas=1, formation="redis-cli")  # skipped without the tool
def test_the_tutorial_workflow_scales_out(cluster: Cluster, metrics: Metrics) -> None:
    """MUST, following the tutorial: a cluster made by ``--cluster create
    --cluster-replicas 1`` is healthy with three masters, each with one replica; a node
    joined by ``--cluster add-node NEW EXISTING`` is a master with no slots that every
    node knows; ``--cluster reshard --cluster-from --cluster-to --cluster-slots
    --cluster-yes`` gives it that many slots, moving their keys, and every key stays
    readable; ``--cluster check`` then reports ``[OK] All nodes agree about slots
    configuration.``, no open slot and ``[OK] All 16384 slots covered.``.

    redis.io, "Scale with Redis Cluster": "Create a Redis Cluster" (``--cluster create``
    with one replica per master), "Add a new node" (the new node "is a master" that
    "has no assigned hash slots"), "Reshard the cluster" ("at the end of the resharding,
    you can test the health of the cluster": ``redis-cli --cluster check``).
    """
    tool = ClusterCli(cluster)
    assert tool.program.version == cluster.impl.version, tool.describe()
    assert len(cluster.initial_masters) == 3
    assert sorted(len(cluster.replicas_of(m)) for m in cluster.initial_masters) == [1, 1, 1]
    first = tool.check()
    assert first.ok, f"{tool.describe()}: {first.describe()}\n" + "\n".join(first.messages)

    client = cluster.client()
    keys = {f"tutorial:{i}": str(i) for i in range(KEYS)}
    for k, v in keys.items():
        client.set(k, v)

    new = cluster.add_nodes(1)[0]
    joined = tool.add_node(new)
    metrics.record("cli_add_node_ms", joined.duration_ms)

    def known_as_empty_master() -> tuple[bool, str]:
        seen, ok = {}, True
        for n in cluster.live_nodes():
            entry = cluster.view(n, with_shards=False).by_id().get(new.node_id or "")
            if entry is None:
                seen[n.name], ok = "unknown", False
                continue
            seen[n.name] = f"{sorted(entry.flags)} {entry.slot_count} slots"
            ok = ok and entry.is_master and not entry.slots and not entry.in_handshake
        return ok, str(seen)

    wait_for(known_as_empty_master, cluster.recovery_s(), f"{new.name} known as an empty master")
    cluster.wait_ready()

    source = cluster.initial_masters[0]
    moved = tool.reshard(source, new, RESHARDED)
    metrics.record("cli_reshard_ms", moved.duration_ms)
    cluster.wait_ready()
    verdict = tool.check()
    assert verdict.ok, f"{tool.describe()}: {verdict.describe()}\n" + "\n".join(verdict.messages)
    mine = checkers.healthy(cluster.snapshot())
    assert mine.ok, str(mine)
    owned = {n.node_id: sum(hi - lo + 1 for lo, hi in n.slots) for n in verdict.masters()}
    assert owned.get(new.node_id) == RESHARDED, f"the tool sees {owned}"
    expected = sum(1 for k in keys if cluster.owner_of_slot(key_slot(k)) is new)
    assert expected > 0 and int(str(new.call("DBSIZE"))) == expected
    wrong = [k for k, v in keys.items() if client.get(k) != v]
    assert not wrong, f"{len(wrong)} keys unreadable after the reshard, e.g. {wrong[:5]}"
