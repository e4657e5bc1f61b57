"""Chaos: real partitions (packets dropped per pair of nodes), the clients still reaching
every node. Needs ``network_faults``: the docker backend, or the local backend as root
with a server that has ``bind-source-addr`` (Redis ≥ 7.0)."""

from __future__ import annotations

import time

import pytest

from harness import Cluster, key_for_slot
from harness.plugin import Metrics
from harness.wait import wait_for

pytestmark = pytest.mark.requires("network_faults")


def _refuses_writes(cluster: Cluster, node: object, key: str) -> tuple[bool, str]:
    ok, seen = cluster.probe_write(node, key)  # type: ignore[arg-type]
    return not ok, seen


def test_isolated_master_stops_taking_writes_and_is_replaced(
    cluster: Cluster, metrics: Metrics
) -> None:
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    key = key_for_slot(cluster.first_slot(master), prefix="partition:")
    bound = cluster.spec.failover_bound_ms() / 1000
    with cluster.faults.partitioned("isolate", node=master) as p:
        t0 = cluster.events[-1].t_ns
        metrics.record("partition", p.describe())
        wait_for(
            lambda: cluster.probe_write(replica, key),
            bound,
            f"{replica.addr} promoted",
            interval=0.01,
        )
        metrics.record("failover_ms", (time.monotonic_ns() - t0) / 1e6)
        # The isolated master answers the harness but must stop accepting writes once it
        # no longer hears a majority of masters: about the node timeout after the split.
        wait_for(
            lambda: _refuses_writes(cluster, master, key), bound, f"{master.addr} refusing writes"
        )
        metrics.record("minority_refuses_ms", (time.monotonic_ns() - t0) / 1e6)
    t_heal = time.monotonic()
    wait_for(
        lambda: cluster.probe_replica_of(master, replica), 30, f"{master.addr} rejoining as replica"
    )
    cluster.wait_ready(30)
    metrics.record("converge_ms", (time.monotonic() - t_heal) * 1000)


@pytest.mark.cluster(masters=3, replicas=1)
def test_majority_minority_split_keeps_the_majority_serving(
    cluster: Cluster, metrics: Metrics
) -> None:
    """Minority: master A and the replica of master B. The majority (two masters) must
    promote A's replica; B keeps its slots; A refuses writes; healing converges."""
    a, b, c = cluster.initial_masters
    a_replica, b_replica = cluster.replicas_of(a)[0], cluster.replicas_of(b)[0]
    key_a = key_for_slot(cluster.first_slot(a), prefix="split-a:")
    key_c = key_for_slot(cluster.first_slot(c), prefix="split-c:")
    bound = cluster.spec.failover_bound_ms() / 1000
    with cluster.faults.partitioned("split", groups=[[a, b_replica]]) as p:
        t0 = cluster.events[-1].t_ns
        metrics.record("partition", p.describe())
        wait_for(
            lambda: cluster.probe_write(a_replica, key_a),
            bound,
            f"{a_replica.addr} promoted",
            interval=0.01,
        )
        metrics.record("failover_ms", (time.monotonic_ns() - t0) / 1e6)
        wait_for(
            lambda: _refuses_writes(cluster, a, key_a),
            bound,
            f"{a.addr} refusing writes on the minority side",
        )
        # The majority serves again once it has seen the promotion (briefly CLUSTERDOWN
        # while A's slots belonged to a failed master).
        wait_for(lambda: cluster.probe_write(c, key_c), bound, f"majority master {c.addr} serving")
        assert cluster.owner_of_slot(cluster.first_slot(b), observer=c) is b
    wait_for(lambda: cluster.probe_replica_of(a, a_replica), 30, f"{a.addr} rejoining as replica")
    wait_for(
        lambda: cluster.probe_replica_of(b_replica, b), 30, f"{b_replica.addr} back with its master"
    )
    cluster.wait_ready(30)
