"""Conformance: a cluster without faults keeps what it acknowledged. A bounded, recorded
set workload (acknowledged SADDs against one final read of every key) runs over keys
spread across the whole slot space, so every master is written to; its keys carry the
run's prefix and, on a cluster the harness does not own, are removed afterwards.

Source: Redis Cluster specification, "Write safety" (writes are lost only around
failovers and partitions) and "Key distribution model".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import Cluster
from harness.checkers import SetChecker
from harness.plugin import Metrics, WorkloadFactory
from harness.scenario import Scenario

# these tests only read, or write keys (flushed between tests): they share a cluster
pytestmark = pytest.mark.shares_cluster


def test_fault_free_writes_are_all_read_back(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """MUST: with no fault, no failover and no partition, every add the cluster
    acknowledged is in the final read of its key, and none it refused is.

    Redis Cluster specification, "Write safety".
    """
    scenario = Scenario(
        dict(kind="set", clients=4, rate=500, max_ops=1500),
        lambda c: None,
        [SetChecker(grace_ms=0, allow_in_window=False)],
        warmup_ops=1000,
        settle_ops=0,
    )
    outcome = scenario.run(cluster, workload, artifacts)
    outcome.record(metrics)
    outcome.assert_valid()
