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

import random
import time

import pytest

from harness import Cluster, checkers, key_for_slot
from harness.backends import Node
from harness.testing import Metrics, never, wait_for

pytestmark = pytest.mark.destructive("kills, pauses, stalls and restarts nodes")


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
    assert (
        wait_for(read_back, cluster.recovery_s(), f"{master.addr} serving reads after restart")
        == keys
    )
    cluster.faults.start(replica)
    cluster.wait_ready()
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
    cluster.wait_ready()
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
    cluster.wait_ready()
    after = cluster.view(cluster.nodes[0], with_shards=False).slot_map()
    assert after == before
    for r in cluster.initial_replicas:
        ok, seen = cluster.probe_replica_of(r, cluster.initial_master_of(r))
        assert ok, f"{r.addr} came back in another role: {seen}"


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000)
def test_stalled_replica_is_flagged_failed_and_cleared_when_it_answers(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    """MUST: a replica whose main thread is blocked (``DEBUG SLEEP``, as a slow disk
    would) past the node timeout is flagged FAIL by every other node, without any effect
    on slot coverage; and once it answers again the FAIL flag MUST be cleared, since a
    replica that is reachable again is not failed over.

    Redis Cluster specification, "Failure detection" ("Clearing FAIL flags": "The node is
    reachable again and it is a replica"); the DEBUG SLEEP stall is the harness's
    ``stall`` fault.
    """
    replica = rng.choice(cluster.initial_replicas)
    master = cluster.initial_master_of(replica)
    others = [n for n in cluster.nodes if n is not replica]
    bound_s = cluster.spec.failover_bound_ms() / 1000
    with cluster.faults.stalled(replica, bound_s + 2) as stall:
        ev = cluster.events[-1]
        assert ev.action == "stall" and ev.node == replica.addr
        wait_for(
            lambda: cluster.probe_flagged_failed(replica),
            bound_s,
            f"{replica.addr} flagged fail by every node while stalled",
        )
        metrics.record("fail_detect_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
        verdict = cluster.check(others)
        assert verdict.ok, f"a stalled replica must not affect slot coverage:\n{verdict}"
    assert stall.error is None
    assert any(e.action == "stall-healed" and e.node == replica.addr for e in cluster.events)
    wait_for(
        lambda: _no_fail_flag_on(cluster, replica),
        bound_s,
        f"FAIL flag of {replica.addr} cleared once it answers",
    )
    wait_for(
        lambda: cluster.probe_replica_of(replica, master),
        cluster.recovery_s(),
        f"{replica.addr} a replica",
    )
    cluster.wait_ready()


def _no_fail_flag_on(cluster: Cluster, node: Node) -> tuple[bool, str]:
    flags = {}
    for v in cluster.snapshot([n for n in cluster.nodes if n is not node], False).views:
        entry = v.by_id().get(node.node_id or "")
        flags[v.observer] = sorted(entry.flags) if entry else ["unknown"]
    return all("fail" not in f and "fail?" not in f for f in flags.values()), str(flags)
