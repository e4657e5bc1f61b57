"""Chaos: real partitions (packets dropped per pair of nodes), the clients still reaching
every node. Needs ``network_faults``: the docker backend, or the local backend as root
with a server that has ``bind-source-addr`` (Redis ≥ 7.0)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from harness import Cluster, key_for_slot
from harness.backends import Node
from harness.plugin import Metrics, WorkloadFactory
from harness.scenario import Scenario
from harness.wait import wait_for

from ._consistency import standard_checkers, watch_failover

pytestmark = [
    pytest.mark.requires("network_faults"),
    pytest.mark.destructive("cuts network links between nodes"),
]


def _refuses_writes(cluster: Cluster, node: Node, key: str) -> tuple[bool, str]:
    ok, seen = cluster.probe_write(node, key)
    return not ok, seen


@pytest.mark.cluster(node_timeout_ms=2000)
@pytest.mark.parametrize("cut", ["partition", "isolate"])
def test_isolated_master_is_replaced_and_rejoins_as_replica(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    workload: WorkloadFactory,
    cut: str,
) -> None:
    """A master cut off from the majority of masters MUST stop accepting writes once it
    has not heard them for the node timeout, its replica MUST be promoted on the
    majority side, and after healing the old master MUST rejoin as a replica of the new
    one (Redis Cluster specification, "Availability", "Replica election and promotion").
    What it acknowledged after the split is lost (specification, "Write safety"): the
    documented behaviour, measured and classified here, never outside the window.
    ``partition``: packets between nodes dropped, clients still reach the cut-off
    master; ``isolate``: clients are cut off too."""
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    slot = cluster.first_slot(master)
    key = key_for_slot(slot, prefix="partition:")
    bound = cluster.spec.failover_bound_ms() / 1000

    def faults(c: Cluster) -> None:
        if cut == "partition":
            c.faults.partition("isolate", node=master)
            metrics.record("partition", f"isolate n{master.index}")
        else:
            c.faults.isolate(master)
        t0 = c.events[-1].t_ns
        watch_failover(c, master, replica, slot)
        metrics.record("failover_ms", (time.monotonic_ns() - t0) / 1e6)
        if cut == "partition":
            wait_for(
                lambda: _refuses_writes(c, master, key), bound, f"{master.addr} refusing writes"
            )
            metrics.record("minority_refuses_ms", (time.monotonic_ns() - t0) / 1e6)
        else:  # the cut-off node is not live: the rest must be whole again
            wait_for(
                c.probe_healthy,
                c.recovery_s(),
                "majority side healthy",
                describe=lambda s: "\n" + s,
            )
        t_heal = time.monotonic()
        c.faults.heal()
        wait_for(
            lambda: c.probe_replica_of(master, replica),
            c.recovery_s(),
            f"{master.addr} rejoining as replica",
        )
        c.wait_ready()
        metrics.record("converge_ms", (time.monotonic() - t_heal) * 1000)

    outcome = Scenario(
        dict(kind="set", clients=4, rate=600), faults, standard_checkers(cluster)
    ).run(cluster, workload, artifacts)
    outcome.record(metrics)
    outcome.assert_valid()


@pytest.mark.cluster(masters=3, replicas=1)
def test_majority_minority_split_keeps_the_majority_serving(
    cluster: Cluster, metrics: Metrics
) -> None:
    """Minority: master A and the replica of master B. The majority side (two masters)
    MUST promote A's replica, B MUST keep its slots, A MUST refuse writes once it has not
    heard a majority of masters for the node timeout, and after healing both cut-off
    nodes MUST rejoin as replicas of their current masters (Redis Cluster
    specification, "Availability", "Replica election and promotion", "How nodes rejoin
    the cluster")."""
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
    wait_for(
        lambda: cluster.probe_replica_of(a, a_replica),
        cluster.recovery_s(),
        f"{a.addr} rejoining as replica",
    )
    wait_for(
        lambda: cluster.probe_replica_of(b_replica, b),
        cluster.recovery_s(),
        f"{b_replica.addr} back with its master",
    )
    cluster.wait_ready()
