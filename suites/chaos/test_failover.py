"""Chaos: losing a master. The replica must take over within a bound derived from the
node timeout, the map must heal, and the old master must come back as a replica."""

from __future__ import annotations

import random
import time

import pytest
import redis

from harness import Cluster, checkers, key_for_slot
from harness.backends import Node
from harness.plugin import Metrics
from harness.wait import wait_for


def _first_slot(cluster: Cluster, master: Node) -> int:
    me = cluster.view(master, with_shards=False).myself
    assert me is not None and me.slots, f"{master.addr} owns no slots"
    return me.slots[0][0]


def _serves_write(node: Node, key: str) -> tuple[bool, str]:
    """Does ``node`` accept a write for ``key`` itself (not MOVED, not CLUSTERDOWN)?"""
    try:
        node.call("SET", key, "after-failover", timeout=0.5)
        return True, "ok"
    except redis.exceptions.RedisError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _healed(cluster: Cluster) -> tuple[bool, str]:
    verdict = checkers.healthy(cluster.snapshot(cluster.live_nodes()))
    return verdict.ok, str(verdict)


def _is_replica_of(cluster: Cluster, node: Node, master: Node) -> tuple[bool, str]:
    entry = cluster.view(node, with_shards=False).myself
    rep = cluster.replication_info(node)
    ok = (
        entry is not None
        and entry.master_id == master.node_id
        and rep.get("master_link_status") == "up"
        and rep.get("master_sync_in_progress") == "0"
    )
    return (
        ok,
        f"flags={sorted(entry.flags) if entry else None} master={entry.master_id if entry else None} {rep}",
    )


def test_kill_master_promotes_its_replica(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    slot = _first_slot(cluster, master)
    key = key_for_slot(slot, prefix="failover:")
    with cluster.node_client(master) as c:
        c.execute_command("SET", key, "before")
        assert int(c.execute_command("WAIT", 1, 5000)) == 1, "write not replicated before the fault"

    kill = cluster.faults.kill(master)
    bound_ms = cluster.spec.failover_bound_ms()
    wait_for(
        lambda: _serves_write(replica, key),
        bound_ms / 1000,
        f"{replica.addr} serving writes for slot {slot}",
        interval=0.01,
    )
    failover_ms = (time.monotonic_ns() - kill.t_ns) / 1e6
    cluster.record("promoted", replica.addr, f"{failover_ms:.0f} ms")
    metrics.record("failover_ms", failover_ms)
    metrics.record("failover_bound_ms", bound_ms)

    wait_for(
        lambda: _healed(cluster),
        10,
        "coverage and agreement after failover",
        describe=lambda s: "\n" + s,
    )
    assert cluster.owner_of_slot(slot) is replica

    t_restart = time.monotonic()
    cluster.faults.start(master)
    wait_for(
        lambda: _is_replica_of(cluster, master, replica),
        20,
        f"old master {master.addr} rejoining as replica",
    )
    cluster.wait_ready(20)
    metrics.record("rejoin_ms", (time.monotonic() - t_restart) * 1000)
    with cluster.node_client(replica) as c:
        assert c.execute_command("GET", key) == "after-failover"
    assert cluster.check().ok


@pytest.mark.cluster(masters=3, replicas=1)
def test_killed_replica_is_flagged_failed_and_rejoins(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    replica = rng.choice(cluster.initial_replicas)
    master = cluster.initial_master_of(replica)
    ev = cluster.faults.kill(replica)

    def flagged() -> tuple[bool, str]:
        views = cluster.snapshot(cluster.live_nodes(), with_shards=False).views
        flags = {v.observer: sorted(v.by_id()[replica.node_id or ""].flags) for v in views}
        return all("fail" in f for f in flags.values()), str(flags)

    wait_for(
        flagged,
        cluster.spec.failover_bound_ms() / 1000,
        f"{replica.addr} flagged fail by every node",
    )
    metrics.record("fail_detect_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
    assert _healed(cluster)[0], "losing a replica must not affect slot coverage"
    cluster.faults.start(replica)
    wait_for(
        lambda: _is_replica_of(cluster, replica, master), 20, f"{replica.addr} back as replica"
    )
    cluster.wait_ready(20)


@pytest.mark.requires("manual_failover")
def test_manual_failover_swaps_roles_without_losing_writes(
    cluster: Cluster, metrics: Metrics
) -> None:
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    slot = _first_slot(cluster, master)
    keys = [key_for_slot(slot, prefix=f"manual{i}:") for i in range(20)]
    with cluster.node_client(master) as c:
        for k in keys:
            c.execute_command("SET", k, k)
    t0 = time.monotonic()
    cluster.record("manual-failover", replica.addr)
    assert replica.call("CLUSTER", "FAILOVER") == "OK"
    wait_for(
        lambda: _serves_write(replica, keys[0]),
        10,
        f"{replica.addr} promoted by CLUSTER FAILOVER",
        interval=0.01,
    )
    metrics.record("manual_failover_ms", (time.monotonic() - t0) * 1000)
    wait_for(
        lambda: _is_replica_of(cluster, master, replica), 10, f"{master.addr} demoted to replica"
    )
    with cluster.node_client(replica) as c:
        values = [c.execute_command("GET", k) for k in keys[1:]]
    assert values == keys[1:], "a manual failover must not lose acknowledged writes"
    cluster.wait_ready(10)
