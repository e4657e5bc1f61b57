"""Chaos: processes that stop and come back with their data. A node restarted from its
own files must come back with the same role, slots and (with ``appendfsync always``)
every acknowledged write; a master silent for less than the node timeout must not be
flagged failed at all.

Source: Redis Cluster specification, "Fault Tolerance" / "Failure detection" and
"Configuration handling, propagation, and failovers" / "Configuration epoch" (cluster
configuration is saved to ``nodes.conf`` and fsynced before a node goes on); the "Redis
persistence" page ("Append-only file").
"""

from __future__ import annotations

import pytest

from harness import Cluster, checkers, key_for_slot
from harness.testing import never, wait_for


@pytest.mark.cluster(masters=3, replicas=1, persistence="aof")
def test_crash_restart_with_aof_keeps_acknowledged_writes(cluster: Cluster) -> None:
    """MUST: with ``appendonly yes`` and ``appendfsync always`` a write is on disk before
    it is acknowledged, so a master killed with SIGKILL and restarted from its own files
    serves every acknowledged write again, as the owner of the same slots (its node ID and
    slots come back from ``nodes.conf``).

    The "Redis persistence" page ("Append-only file": ``appendfsync always``); Redis Cluster
    specification, "Configuration epoch" (configuration changes are fsynced to
    ``nodes.conf``).
    """
    master = cluster.initial_masters[1]
    replica = cluster.replicas_of(master)[0]
    first = cluster.first_slot(master)
    keys = [key_for_slot(first + i, prefix="aof:") for i in range(10)]
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
    assert cluster.owner_of_slot(first) is master, "the restarted master lost its slots"


def test_paused_master_shorter_than_node_timeout_keeps_its_role(cluster: Cluster) -> None:
    """MUST NOT: a master that answers nothing for less than the node timeout is not
    flagged ``fail`` (nor even ``fail?``) by any node, and keeps its slots: a node is
    PFAIL only once a ping to it has been pending for longer than ``NODE_TIMEOUT``, and
    FAIL needs PFAIL reports from a majority of masters. Observed for half the node
    timeout, polling, while the master is frozen (SIGSTOP).

    Redis Cluster specification, "Fault Tolerance" / "Failure detection" (PFAIL flag,
    FAIL flag).
    """
    master = cluster.initial_masters[0]
    with cluster.faults.paused(master):

        def flagged() -> tuple[bool, str]:
            views = cluster.snapshot(
                [n for n in cluster.live_nodes() if n is not master], with_shards=False
            )
            seen = {
                v.observer: sorted(e.flags)
                for v in views.views
                if (e := v.by_id()[master.node_id or ""]).failed or e.suspected
            }
            return bool(seen), f"{master.addr} flagged by {seen}"

        never(
            flagged,
            cluster.spec.node_timeout_ms / 2000,
            f"{master.addr} flagged failed while paused for half the node timeout",
        )
    cluster.wait_ready(20)
    assert cluster.owner_of_slot(0) is master
    verdict = checkers.healthy(cluster.snapshot())
    assert verdict.ok, str(verdict)


def test_graceful_restart_of_every_node_keeps_the_map(cluster: Cluster) -> None:
    """MUST: every replica, stopped gracefully (SIGTERM) and started again with its files,
    rejoins with the same role and master, so the slot map is exactly as before.
    (Replicas only: a master away for long enough is legitimately failed over.)

    Redis Cluster specification, "Cluster node attributes" (a node keeps its ID in its
    configuration file) and "Configuration epoch" (configuration is saved to
    ``nodes.conf``).
    """
    before = cluster.view(cluster.nodes[0], with_shards=False).slot_map()
    for n in cluster.initial_replicas:
        cluster.faults.restart(n)
    cluster.wait_ready(30)
    after = cluster.view(cluster.nodes[0], with_shards=False).slot_map()
    assert after == before
    for r in cluster.initial_replicas:
        ok, seen = cluster.probe_replica_of(r, cluster.initial_master_of(r))
        assert ok, f"{r.addr} came back in another role: {seen}"
