"""Chaos: pausing and restarting nodes with their data."""

from __future__ import annotations

import pytest

from harness import Cluster, checkers, key_for_slot
from harness.wait import wait_for


@pytest.mark.cluster(masters=3, replicas=1, persistence="aof")
def test_crash_restart_with_aof_keeps_acknowledged_writes(cluster: Cluster) -> None:
    master = cluster.initial_masters[1]
    replica = cluster.replicas_of(master)[0]
    me = cluster.view(master, with_shards=False).myself
    assert me is not None
    keys = [key_for_slot(me.slots[0][0] + i, prefix="aof:") for i in range(10)]
    with cluster.node_client(master) as c:
        for k in keys:
            c.execute_command("SET", k, k)
    # Take the replica out first so the restarted master keeps its role and must serve
    # the keys from its own AOF.
    cluster.faults.stop(replica)
    cluster.faults.crash_restart(master)

    def read_back() -> tuple[bool, list[object]]:
        with cluster.node_client(master) as c:
            values = [c.execute_command("GET", k) for k in keys]
        return True, values

    # Errors (LOADING, CLUSTERDOWN while peers re-accept it) mean "not yet".
    assert wait_for(read_back, 30, f"{master.addr} serving reads after restart") == keys
    cluster.faults.start(replica)
    cluster.wait_ready(30)


def test_paused_master_shorter_than_node_timeout_keeps_its_role(cluster: Cluster) -> None:
    master = cluster.initial_masters[0]
    with cluster.faults.paused(master):
        # Observe for half the node timeout that the cluster does not flag it failed.
        def still_trusted() -> tuple[bool, str]:
            views = cluster.snapshot(
                [n for n in cluster.live_nodes() if n is not master], with_shards=False
            )
            failed = [v.observer for v in views.views if v.by_id()[master.node_id or ""].failed]
            return bool(failed), f"flagged failed by {failed}"

        with pytest.raises(Exception, match="not reached"):
            wait_for(
                still_trusted,
                cluster.spec.node_timeout_ms / 2000,
                "master flagged failed while briefly paused",
            )
    cluster.wait_ready(20)
    assert cluster.owner_of_slot(0) is master
    verdict = checkers.healthy(cluster.snapshot())
    assert verdict.ok, str(verdict)


def test_graceful_restart_of_every_node_keeps_the_map(cluster: Cluster) -> None:
    before = cluster.view(cluster.nodes[0], with_shards=False).slot_map()
    for n in cluster.initial_replicas:
        cluster.faults.restart(n)
    cluster.wait_ready(30)
    after = cluster.view(cluster.nodes[0], with_shards=False).slot_map()
    assert after == before
