"""Chaos: a master cut off from the cluster network. Needs a backend that can cut links
(``--backend docker``); elsewhere these tests are skipped with the reason."""

from __future__ import annotations

import random
import time

import pytest

from harness import Cluster, key_for_slot
from harness.plugin import Metrics
from harness.wait import wait_for

pytestmark = pytest.mark.requires("network_faults")


def test_isolated_master_is_replaced_and_rejoins_as_replica(
    cluster: Cluster, metrics: Metrics, rng: random.Random
) -> None:
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    key = key_for_slot(cluster.first_slot(master), prefix="isolate:")
    ev = cluster.faults.isolate(master)
    bound_ms = cluster.spec.failover_bound_ms()
    wait_for(
        lambda: cluster.probe_write(replica, key),
        bound_ms / 1000,
        f"{replica.addr} promoted",
        interval=0.01,
    )
    metrics.record("failover_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
    wait_for(cluster.probe_healthy, 10, "majority side healthy", describe=lambda s: "\n" + s)

    t_heal = time.monotonic()
    cluster.faults.rejoin(master)
    wait_for(
        lambda: cluster.probe_replica_of(master, replica), 30, f"{master.addr} rejoining as replica"
    )
    cluster.wait_ready(30)
    metrics.record("rejoin_ms", (time.monotonic() - t_heal) * 1000)


def test_master_cut_off_by_packet_drops_stops_taking_writes(
    cluster: Cluster, metrics: Metrics
) -> None:
    """Per-pair drops between a master and every peer, while clients still reach it: the
    master must stop accepting writes (minority side) and its replica take over."""
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    peers = [n for n in cluster.nodes if n is not master]
    key = key_for_slot(cluster.first_slot(master), prefix="drops:")
    ev = cluster.faults.drop(master, peers)
    cluster.faults.drop(peers, master)
    try:
        bound = cluster.spec.failover_bound_ms() / 1000
        wait_for(
            lambda: cluster.probe_write(replica, key),
            bound,
            f"{replica.addr} promoted",
            interval=0.01,
        )
        metrics.record("failover_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
        # The cut-off master still answers the harness but refuses writes once it sees
        # the cluster as failed (it cannot reach a majority of masters).
        wait_for(
            lambda: (not cluster.probe_write(master, key)[0], cluster.probe_write(master, key)[1]),
            bound,
            f"{master.addr} refusing writes on the minority side",
        )
        metrics.record("minority_refuses_ms", (time.monotonic_ns() - ev.t_ns) / 1e6)
    finally:
        cluster.faults.heal()
    wait_for(
        lambda: cluster.probe_replica_of(master, replica), 30, f"{master.addr} rejoining as replica"
    )
    cluster.wait_ready(30)
