"""Shared steps of the chaos suites under load: which checkers judge, and watching a
failover happen (recorded on the timeline as ``fail-flag`` and ``promoted``)."""

from __future__ import annotations

from collections.abc import Callable

from harness import Cluster, checkers, key_for_slot
from harness.backends import Node
from harness.checkers import Checker
from harness.spec import slot_ranges
from harness.wait import wait_for


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


def watch_failover(cluster: Cluster, master: Node, replica: Node, slot: int) -> None:
    """Record when peers flag the master failed and when the replica serves its slots."""
    bound = cluster.spec.failover_bound_ms() / 1000
    key = key_for_slot(slot, prefix="probe:")
    wait_for(
        lambda: cluster.probe_flagged_failed(master),
        bound,
        f"{master.addr} flagged failed",
        interval=0.01,
    )
    cluster.record("fail-flag", master.addr)
    wait_for(
        lambda: cluster.probe_write(replica, key), bound, f"{replica.addr} promoted", interval=0.01
    )
    cluster.record("promoted", replica.addr)
