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
