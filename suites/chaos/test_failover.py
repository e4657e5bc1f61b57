"""Chaos: losing a master or a replica. A replica must take over within a bound derived
from the node timeout, the map must heal, and the lost node must come back as a replica."""

from __future__ import annotations

import random
import time

import pytest

from harness import Cluster, key_for_slot
from harness.plugin import Metrics
from harness.wait import wait_for


def test_kill_master_promotes_its_replica(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    slot = cluster.first_slot(master)
    key = key_for_slot(slot, prefix="failover:")
    with cluster.node_client(master) as c:
        c.execute_command("SET", key, "before")
        assert int(c.execute_command("WAIT", 1, 5000)) == 1, "write not replicated before the fault"

    kill = cluster.faults.kill(master)
    bound_ms = cluster.spec.failover_bound_ms()
    wait_for(
        lambda: cluster.probe_write(replica, key, "after-failover"),
        bound_ms / 1000,
        f"{replica.addr} serving writes for slot {slot}",
        interval=0.01,
    )
    failover_ms = (time.monotonic_ns() - kill.t_ns) / 1e6
    cluster.record("promoted", replica.addr, f"{failover_ms:.0f} ms")
    metrics.record("failover_ms", failover_ms)
    metrics.record("failover_bound_ms", bound_ms)

    wait_for(
        cluster.probe_healthy,
        10,
        "coverage and agreement after failover",
        describe=lambda s: "\n" + s,
    )
    assert cluster.owner_of_slot(slot) is replica

    t_restart = time.monotonic()
    cluster.faults.start(master)
    wait_for(
        lambda: cluster.probe_replica_of(master, replica),
        20,
        f"old master {master.addr} rejoining as replica",
    )
    cluster.wait_ready(20)
    metrics.record("rejoin_ms", (time.monotonic() - t_restart) * 1000)
    with cluster.node_client(replica) as c:
        assert c.execute_command("GET", key) == "after-failover"
    assert cluster.check().ok


def test_killed_replica_is_flagged_failed_and_rejoins(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    replica = rng.choice(cluster.initial_replicas)
    master = cluster.initial_master_of(replica)
    ev = cluster.faults.kill(replica)
    bound = cluster.spec.failover_bound_ms() / 1000
    wait_for(
        lambda: cluster.probe_flagged_failed(replica),
        bound,
        f"{replica.addr} flagged fail by every node",
    )
    metrics.record("fail_detect_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
    ok, problems = cluster.probe_healthy()
    assert ok, f"losing a replica must not affect slot coverage: {problems}"
    cluster.faults.start(replica)
    wait_for(
        lambda: cluster.probe_replica_of(replica, master), 20, f"{replica.addr} back as replica"
    )
    cluster.wait_ready(20)


@pytest.mark.requires("manual_failover")
def test_manual_failover_swaps_roles_without_losing_writes(
    cluster: Cluster, metrics: Metrics
) -> None:
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    slot = cluster.first_slot(master)
    keys = [key_for_slot(slot, prefix=f"manual{i}:") for i in range(20)]
    with cluster.node_client(master) as c:
        for k in keys:
            c.execute_command("SET", k, k)
    t0 = time.monotonic()
    cluster.record("manual-failover", replica.addr)
    assert replica.call("CLUSTER", "FAILOVER") == "OK"
    wait_for(
        lambda: cluster.probe_write(replica, keys[0], keys[0]),
        10,
        f"{replica.addr} promoted by CLUSTER FAILOVER",
        interval=0.01,
    )
    metrics.record("manual_failover_ms", (time.monotonic() - t0) * 1000)
    wait_for(
        lambda: cluster.probe_replica_of(master, replica), 10, f"{master.addr} demoted to replica"
    )
    with cluster.node_client(replica) as c:
        values = [c.execute_command("GET", k) for k in keys]
    assert values == keys, "a manual failover must not lose acknowledged writes"
    cluster.wait_ready(10)
