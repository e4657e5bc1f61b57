"""Our availability promise: when a master dies, its replica serves its slots within the
bound the Redis Cluster specification implies, and no acknowledged write is lost."""

from __future__ import annotations

import pytest

from harness import Cluster, key_for_slot
from harness.testing import FailoverWatcher, Metrics, wait_for


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000)
def test_a_dead_master_is_replaced_in_time(cluster: Cluster, metrics: Metrics) -> None:
    """Our rule: a replica takes over a killed master's slots within the failover bound
    (2 x node timeout + election; recorded as the metric ``failover_ms`` in
    reports/summary.json) and keeps what the master acknowledged and replicated."""
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    watcher = FailoverWatcher(cluster, master, replica, metrics=metrics)
    kept = key_for_slot(watcher.slot, prefix="kept:")  # a key of the slot that changes hands
    with cluster.node_client(master) as c:
        c.execute_command("SET", kept, "before")
        assert int(c.execute_command("WAIT", 1, 5000)) == 1, "not replicated before the kill"

    watcher.wait(cluster.faults.kill(master), value="after")

    wait_for(cluster.probe_healthy, 10, "every node agreeing on the new owner")
    with cluster.node_client(replica) as c:
        assert c.execute_command("GET", kept) == "before", "an acknowledged write was lost"
        assert c.execute_command("GET", watcher.key) == "after"
