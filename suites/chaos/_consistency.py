"""Shared steps of the consistency suites: run the checkers on a history, store it, and
record the numbers (lost_acked_writes, unknown_writes, unavailable_ms, phases)."""

from __future__ import annotations

from pathlib import Path

from harness import Cluster, consistency
from harness.cluster import slot_ranges
from harness.history import FaultEvent, History
from harness.plugin import Metrics

#: Replication is asynchronous: a write acknowledged this shortly before a master dies
#: may not have reached its replica. Such losses count as inside the fault window.
REPLICATION_GRACE_NS = 50_000_000


def shard_of(cluster: Cluster):  # type: ignore[no-untyped-def]
    bounds = slot_ranges(cluster.spec.masters)

    def shard(slot: int) -> str:
        for i, (lo, hi) in enumerate(bounds):
            if lo <= slot <= hi:
                return f"shard{i}"
        return "none"

    return shard


def with_grace(history: History) -> History:
    """The history with every kill/pause/isolate/partition window opened earlier by the
    replication grace."""
    extra = [
        FaultEvent(e.t_ns - REPLICATION_GRACE_NS, e.action, e.node, "replication grace")
        for e in history.events
        if e.action in ("kill", "pause", "isolate", "partition", "stop")
    ]
    return History(history.ops, sorted([*history.events, *extra], key=lambda e: e.t_ns))


def check_and_record(
    cluster: Cluster, history: History, metrics: Metrics, artifacts: Path, grace: bool = True
) -> consistency.SetResult:
    history.write_jsonl(artifacts / "history.jsonl")
    checked = with_grace(history) if grace else history
    result = consistency.check_set(checked)
    unavailable = consistency.availability(history, shard_of(cluster))
    for name, value in consistency.summarise(result, unavailable=unavailable).items():
        metrics.record(name, value)
    (artifacts / "verdict.txt").write_text(result.describe() + "\n")
    return result


def no_loss_outside_windows(result: consistency.SetResult) -> None:
    before, after = result.lost["before-faults"].count, result.lost["after-heal"].count
    assert before == 0 and after == 0, (
        "acknowledged writes lost outside any fault window:\n" + result.describe()
    )
    assert result.unexpected_count == 0 and result.failed_present_count == 0, result.describe()
