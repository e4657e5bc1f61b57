"""Shared steps of the chaos suites under load: which checkers judge, and watching a
failover happen (recorded on the timeline as ``fail-flag`` and ``promoted``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import Cluster, checkers
from harness.backends import Node
from harness.checkers import Checker
from harness.spec import slot_ranges
from harness.testing import FailoverWatcher


def shard_of(cluster: Cluster) -> Callable[[int], str]:
    """Slot -> the name of the shard that owned it at formation."""
    bounds = slot_ranges(cluster.spec.masters)

    def shard(slot: int) -> str:
        for i, (lo, hi) in enumerate(bounds):
            if lo <= slot <= hi:
                return f"shard{i}"
        return "none"

    return shard


def standard_checkers(
    cluster: Cluster, *, grace: bool = True, allow_in_window: bool = True
) -> list[Checker]:
    """The set checker (Redis Cluster's contract: nothing acknowledged outside a fault
    window is lost; with ``allow_in_window=False``, nothing at all) and availability."""
    grace_ms = checkers.REPLICATION_GRACE_MS if grace else 0.0
    return [
        checkers.SetChecker(grace_ms=grace_ms, allow_in_window=allow_in_window),
        checkers.AvailabilityChecker(shard_of(cluster)),
    ]


def slots_of(cluster: Cluster, master: Node) -> frozenset[int]:
    me = cluster.view(master, with_shards=False).myself
    assert me is not None
    return frozenset(s for lo, hi in me.slots for s in range(lo, hi + 1))


def watch_failover(
    cluster: Cluster, master: Node, replica: Node, slot: int, bound_ms: int | None = None
) -> None:
    """From now, within ``bound_ms`` (default the automatic-failover bound): peers flag
    the master failed, then the replica serves its slot (both recorded on the timeline,
    ``fail-flag`` and ``promoted``)."""
    FailoverWatcher(cluster, master, replica, slot=slot).wait(
        time.monotonic_ns(), flagged=True, bound_ms=bound_ms
    )


def election_retry_ms(cluster: Cluster) -> int:
    """How much later a replica tries again after an election it did not win: twice the
    vote timeout MAX(2·node timeout, 2 s), then 500-1000 ms of delay (``auth_retry_time``
    in ``clusterHandleSlaveFailover``, the servers' ``cluster.c`` / ``cluster_legacy.c``).
    Replicas of masters that died together can split the votes of one epoch."""
    return 2 * max(2 * cluster.spec.node_timeout_ms, 2000) + 1000
