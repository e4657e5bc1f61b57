"""Regression: a replica moved to another shard with ``CLUSTER REPLICATE`` can win the
election with its old shard's replication offset and serve the wrong data.

valkey-io/valkey#885 (the fix, in Valkey 8.0.0; Redis: redis/redis#15680, merged
2026-08): when a node becomes the replica of a master of *another* shard, the old master
link is kept as the cached master for a PSYNC, and until the first full sync with the new
master ``replicationGetReplicaOffset`` returns the cached master's offset: the *old
shard's*. The replica gossips it and ranks itself by it (``clusterGetReplicaRank``), so if
the new master dies before that sync the moved replica may get rank 0, start its election
first, win, and serve the new shard's slots with the old shard's keys; the shard's other
replica then resyncs from it and the shard's data is gone. Affected, as the reports say:
Valkey 7.2 and Redis up to the fix. The fix discards the cached master when a full sync is
required (``clusterSetPrimary(n, 1, 1)`` in ``CLUSTER REPLICATE``), so the moved replica
ranks with offset 0; Redis's fix also resets ``repl_down_since`` so that with a non-zero
``cluster-replica-validity-factor`` it does not start an election at all.

Recipe, as the fix's test (``tests/unit/cluster/replica_migration.tcl``, "New non-empty
replica reports zero repl offset and rank, and fails to win election") gives it: a source
shard with a larger offset than the target shard, the target master's full sync held up,
``CLUSTER REPLICATE <target>`` on the source's replica, then the target master down. Here:
3 masters x 1 replica, 1 MiB written to the source shard, ``KEYS`` acknowledged keys
(``WAIT``) in the target shard, and ``cluster-migration-barrier`` 999 (as the fix's test)
so the orphaned source shard draws no replica. The sync is held with
``repl-diskless-sync-delay`` 60 s, set on the target master only, instead of the test's
``rdb-key-save-delay``: a diskless master answers ``+FULLRESYNC`` only when it forks, and
Redis 6.2 drops the cached master on that reply (7.0+ and Valkey only when loading starts,
``replicationAttachToNewMaster``), so only an unanswered PSYNC keeps 6.2's stale offset.

Checked against the sources: valkey 8.0.1 ``replication.c`` / ``cluster_legacy.c`` (the
fix present), redis 7.0.15 / 6.2.14 ``replication.c`` (``replicationGetSlaveOffset``
returns ``cached_master->reploff``; ``replicationSetMaster`` caches the old master).
Measured here, and why there are two scenarios: on Redis 6.2 a *killed* master breaks the
pending PSYNC read, which 6.2 takes as "Unexpected reply to PSYNC" and discards the cached
master (7.0 logs "Master did not reply to PSYNC, will try later" and keeps it), so the
moved replica reports offset 0 and ranks behind the synced one; a *hung* master (SIGSTOP)
leaves the PSYNC pending and 6.2 shows the bug too. Hence ``failover-after-replicate``
(the master killed, the reports' case) and ``failover-after-replicate-hung-master`` (the
master paused until the outcome is read).
"""

from __future__ import annotations

import pytest

from harness import Cluster, key_for_slot
from harness.backends import Node
from harness.errors import NotReadyError
from harness.regressions import Bug, Regression
from harness.wait import wait_for

_AFFECTED = "Valkey 7.2; Redis before redis/redis#15680 (6.2, 7.x, 8.x)"
_FIXED = "Valkey 8.0.0 (valkey-io/valkey#885); Redis: redis/redis#15680 (merged 2026-08)"
_OBSERVABLE = "the moved replica promoted, the shard's acknowledged keys missing on it"

BUG = Bug(
    name="failover-after-replicate",
    reference="valkey-io/valkey#885, redis/redis#15680",
    title="a replica moved to another shard ranks by its old shard's offset until its "
    "first sync: the new master killed, it can win and serve the wrong data",
    affected=_AFFECTED,
    fixed=_FIXED,
    observable=_OBSERVABLE,
)
BUG_HUNG = Bug(
    name="failover-after-replicate-hung-master",
    reference="valkey-io/valkey#885, redis/redis#15680",
    title="as failover-after-replicate, the new master hung (SIGSTOP) instead of killed: "
    "the moved replica's PSYNC stays pending and it keeps the stale offset",
    affected=_AFFECTED,
    fixed=_FIXED,
    observable=_OBSERVABLE,
)

pytestmark = pytest.mark.destructive("moves a replica to another shard and downs its master")

#: acknowledged keys in the target shard
KEYS = 100
#: bytes written to the source shard, so its offset is far above the target's
SOURCE_BYTES = 1 << 20
#: seconds the target master holds the moved replica's full sync back
SYNC_HELD_S = 60
#: the fix's test sets it too: the orphaned source shard must not draw a replica
SERVER_ARGS = {"cluster-migration-barrier": "999"}
ELECTION = r"Start of election delayed for"
#: how the moved replica took the fault: 6.2 drops the cached master on a broken PSYNC read
PSYNC = r"Unexpected reply to PSYNC|did not reply to PSYNC"


@pytest.mark.regression(BUG)
@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000, server_args=SERVER_ARGS)
def test_failover_after_replicate(cluster: Cluster, regression: Regression) -> None:
    """The target master killed right after ``CLUSTER REPLICATE``: the promoted node
    MUST have the shard's data (specification, "Replica rank": the replica with the
    greatest offset is elected first, so the one that has the master's data wins)."""
    _scenario(cluster, regression, hung=False)


@pytest.mark.regression(BUG_HUNG)
@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000, server_args=SERVER_ARGS)
def test_failover_after_replicate_hung_master(cluster: Cluster, regression: Regression) -> None:
    """As :func:`test_failover_after_replicate`, the target master paused (a hang, not
    a crash) until the outcome is read."""
    _scenario(cluster, regression, hung=True)


def _acked(cluster: Cluster, master: Node, pairs: list[tuple[str, str]]) -> int:
    """SET each pair on ``master``, then ``WAIT`` on the same connection: the number of
    replicas that acknowledged every write."""
    with cluster.node_client(master, timeout=10) as c:
        pipe = c.pipeline(transaction=False)
        for k, v in pairs:
            pipe.set(k, v)
        pipe.execute()
        return int(c.wait(1, 5000))


def _offset(cluster: Cluster, replica: Node) -> int:
    return int(cluster.replication_info(replica).get("slave_repl_offset", "0"))


def _scenario(cluster: Cluster, regression: Regression, *, hung: bool) -> None:
    target, source = regression.rng.sample(cluster.initial_masters, 2)
    synced = cluster.replicas_of(target)[0]
    moved = cluster.replicas_of(source)[0]
    slot = cluster.first_slot(target)
    tag = key_for_slot(slot, prefix="acked")  # every key in the slot, by its hash tag
    keys = [f"{{{tag}}}:{i}" for i in range(KEYS)]
    with regression.setup(f"{SOURCE_BYTES} bytes to the source shard, {KEYS} keys to the target"):
        big = key_for_slot(cluster.first_slot(source), "big:")
        assert _acked(cluster, source, [(big, "x" * SOURCE_BYTES)]) == 1, "source not replicated"
        assert _acked(cluster, target, [(k, k) for k in keys]) == 1, "target not replicated"
        offsets = {"moved": _offset(cluster, moved), "synced": _offset(cluster, synced)}
        assert offsets["moved"] > offsets["synced"], f"offsets {offsets}: source not ahead"
    with regression.setup(f"hold {target.addr}'s full syncs, move {moved.addr} to it"):
        target.call("CONFIG", "SET", "repl-diskless-sync-delay", str(SYNC_HELD_S))
        assert moved.call("CLUSTER", "REPLICATE", target.node_id) == "OK"

        def seen_moved() -> tuple[bool, str | None]:
            entry = cluster.view(synced, with_shards=False).by_id()[moved.node_id or ""]
            return entry.master_id == target.node_id, entry.master_id

        wait_for(seen_moved, 5, f"{synced.addr} seeing {moved.addr} as {target.addr}'s replica")
        stale = _offset(cluster, moved)
    regression.evidence(
        f"before the fault: {moved.addr} (moved) reports offset {stale}, {synced.addr} "
        f"(synced) {offsets['synced']}; the moved replica's own shard was at {offsets['moved']}"
    )
    fault = f"{'pause' if hung else 'kill'} {target.addr}"
    if hung:  # paused until the outcome is read, then resumed
        with cluster.faults.paused(target):
            _judge(cluster, regression, target, synced, moved, keys, slot, fault)
    else:
        cluster.faults.kill(target)
        _judge(cluster, regression, target, synced, moved, keys, slot, fault)


def _judge(
    cluster: Cluster,
    regression: Regression,
    target: Node,
    synced: Node,
    moved: Node,
    keys: list[str],
    slot: int,
    fault: str,
) -> None:
    voter = next(m for m in cluster.initial_masters if m is not target)
    bound = cluster.spec.failover_bound_ms() / 1000 + 1  # one more replica rank than spec

    def new_owner() -> tuple[bool, str | None]:
        owner = cluster.view(voter, with_shards=False).slot_owners()[slot]
        return owner not in (None, target.node_id), owner

    try:
        owner = wait_for(new_owner, bound, f"a replica of {target.addr} owning slot {slot}")
    except NotReadyError as exc:
        regression.inconclusive(f"after {fault} no replica took over: {exc}")
    winner = cluster.node_by_id(owner or "")
    for line in regression.log_lines(cluster, ELECTION):
        if line.startswith((f"{synced.name}:", f"{moved.name}:")):
            regression.evidence(line)
    for line in regression.log_lines(cluster, PSYNC):
        if line.startswith(f"{moved.name}:"):
            regression.evidence(line)
            break

    def read_back() -> tuple[bool, list[object]]:
        return True, [winner.call("GET", k) for k in keys]

    values = wait_for(read_back, cluster.recovery_s(), f"reads from {winner.addr}")
    missing = [k for k, v in zip(keys, values, strict=True) if v != k]
    who = "the moved replica" if winner is moved else "the synced replica"
    facts = {"winner": "moved" if winner is moved else "synced", "missing": len(missing)}
    if missing and winner is moved:
        regression.reproduced(
            f"after {fault}: {who} {winner.addr} took slot {slot}; {len(missing)} of "
            f"{len(keys)} acknowledged keys missing on it, e.g. {missing[:3]}",
            **facts,
        )
    elif missing:
        regression.inconclusive(
            f"after {fault}: {who} {winner.addr} won yet {len(missing)} keys are missing: "
            "data lost another way, not by this bug's election",
            **facts,
        )
    else:
        regression.not_reproduced(
            f"after {fault}: {who} {winner.addr} took slot {slot} with all {len(keys)} keys",
            **facts,
        )
