"""Chaos: moving slots under load (scaling out and in, live resharding), with nodes
failing mid-migration.

Source: Redis Cluster specification, "Redirection and resharding" (``MIGRATING`` /
``IMPORTING``, ``ASK``, ``MIGRATE``: a key is on the source until moved, then on the
target, and a client that follows ``MOVED``/``ASK`` reaches it all along), "Write
safety" (what a failover may lose), "Replica election and promotion"; the ``CLUSTER
SETSLOT`` and ``redis-cli --cluster`` (rebalance, del-node, fix) documentation.

Every migration is recorded on the timeline by :mod:`harness.ops`. A failover
mid-migration is judged against what the specification gives: keys already moved are on
the target side, the others on the source side, and the cluster serves them (a client
following redirections reads every acknowledged value) once a replica took over. Where
a server does not, the verdict says which slot, how many keys each node holds and what
is left open (:func:`harness.ops.inspect_slots`), then an operator's repair closes the
slot (:func:`._repair.repair`) and nothing may be lost in the end.

The workload runs on the ``raw`` engine whatever ``--workload-engine`` says: it follows
``MOVED``/``ASK`` to any node named, as the specification asks. redis-py's asyncio
cluster client (8.1) does not while slots move: it does not follow an ``ASK`` to a node
that owns no slot yet (redis/redis-py#4015), and on every fifth ``MOVED`` it reopens
its map by closing every connection, the ones other commands are waiting on too. Its
left-overs would measure the client, not the server.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from harness import Cluster
from harness.checkers import AvailabilityChecker, Checker, SetChecker
from harness.ops import (
    SlotMigration,
    add_master,
    migrate_slots,
    rebalance,
    remove_node,
)
from harness.ops.migrate import MIGRATE_TIMEOUT_MS
from harness.plugin import Metrics, WorkloadFactory
from harness.testing import never, wait_for
from harness.workload import Workload

from ._consistency import shard_of, watch_failover
from ._midway import (
    BATCH,
    FILL,
    OPEN_ON_REPLICA,
    Interrupted,
    open_only_on,
    probe_slot,
    unsettled,
    wait_state_ok,
)
from ._repair import (
    BEFORE,
    fill_slot,
    keys_on,
    repair,
    unreadable,
    wait_caught_up,
)
from ._scaling import (
    LeftoverChecker,
    RedirectTally,
    first_free_slot,
    owned_slots,
    run_under_load,
    verdict,
    workload_slots,
)

pytestmark = pytest.mark.destructive("moves slots, adds and removes masters, kills mid-migration")

NT_FAST = 1000  # node timeout of the fault cases: failovers in about a second
LOAD = {"kind": "set", "clients": 4, "rate": 600, "engine": "raw"}


def _strict(cluster: Cluster) -> list[Checker]:
    """Nothing lost at all, nothing left failed after the client's redirect handling."""
    return [
        SetChecker(grace_ms=0, allow_in_window=False),
        LeftoverChecker(strict=True),
        AvailabilityChecker(shard_of(cluster)),
    ]


def _faulted(cluster: Cluster) -> list[Checker]:
    """Losses only inside a master's fault window; left-overs measured."""
    return [
        SetChecker(),
        LeftoverChecker(strict=False),
        AvailabilityChecker(shard_of(cluster)),
    ]


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=NT_FAST)
def test_scale_out_to_four_masters_and_back_under_load(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """MUST: a master added (``MEET``), given an even share of the slots (rebalance), then
    drained and removed (``CLUSTER FORGET``), all under load, loses no acknowledged write,
    and a client that follows ``MOVED`` and ``ASK`` sees every operation succeed: each key
    is served by its source until moved and by its target after (specification,
    "Redirection and resharding", "Live resharding"). The verdict states both: writes
    lost, and operations left failed or unknown after the client's redirect handling,
    next to the redirections the servers sent."""
    tally = RedirectTally()

    def plan(c: Cluster, wl: Workload) -> list[str]:
        tally.sample(c.live_nodes(), start=True)
        new = add_master(c)
        wait_state_ok(c, new)
        moved_in = rebalance(c)
        masters = c.masters()
        assert len(masters) == 4 and new in masters, f"after rebalance: {masters}"
        share = len(owned_slots(c, new))
        tally.sample(c.live_nodes())  # the new node's count ends with its removal
        remove_node(c, new)
        assert new not in c.nodes and len(c.masters()) == 3
        c.wait_ready()
        metrics.record("slots_to_new_master", share)
        metrics.record("keys_moved_in", moved_in)
        tally.sample(c.live_nodes())
        return [
            f"added {new.addr}, rebalanced {share} slots ({moved_in} keys) to it, removed it",
            tally.describe(),
        ]

    wl = workload(cluster, **LOAD)
    outcome, notes = run_under_load(cluster, wl, plan, _strict(cluster), artifacts)
    outcome.record(metrics)
    for code, n in tally.total().items():
        metrics.record(f"redirects_{code}", n)
    assert outcome.valid == "valid", verdict(outcome, notes)


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=NT_FAST)
def test_migration_with_a_source_replica_killed_midway(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """MUST: a migration goes on while a replica of the source is dead (writes go to
    masters only), so nothing is lost and nothing left failed; and the replica, back with
    its files, follows the new map: no slot stays open on it, whatever migration state
    it saved (Valkey replicates ``SETSLOT`` to replicas). Specification, "Redirection
    and resharding"; "How nodes rejoin the cluster"."""
    source, target = cluster.initial_masters[0], cluster.initial_masters[1]
    replica = cluster.replicas_of(source)[0]
    wl = workload(cluster, **LOAD)
    busy = workload_slots(wl)
    mine = owned_slots(cluster, source)
    keyed = sorted(s for s in mine if s in busy)
    slot = first_free_slot(mine, busy)
    fillers = fill_slot(cluster, source, slot, FILL)
    left_open: list[str] = []

    def plan(c: Cluster, wl: Workload) -> list[str]:
        m = SlotMigration(c, slot, source, target, batch=BATCH)
        m.open()
        m.move_batch()
        c.faults.kill(replica)
        m.move_all()
        m.finish()
        moved = migrate_slots(c, source, target, keyed)
        c.faults.start(replica)
        wait_for(
            lambda: c.probe_replica_of(replica, source),
            c.recovery_s(),
            f"{replica.addr} back as a replica of {source.addr}",
        )
        notes = [f"moved slot {slot} ({FILL} keys) and {len(keyed)} workload slots ({moved} keys)"]
        stale = unsettled(c, [slot, *keyed], target)
        if stale and all(open_only_on(r, replica, target) for r in stale):
            left_open.extend(r.describe() for r in stale)
            notes.append(f"{replica.addr} kept the slot open: {left_open[0]}")
            # what clears it: the master's SETSLOT STABLE, replicated (replicas refuse SETSLOT)
            source.call("CLUSTER", "SETSLOT", slot, "STABLE", timeout=15.0)
            stale = unsettled(c, [slot, *keyed], target)
        assert not stale, "\n".join(r.describe() for r in stale)
        return notes

    outcome, notes = run_under_load(cluster, wl, plan, _strict(cluster), artifacts)
    outcome.record(metrics)
    metrics.record("left_open_on_replica", len(left_open))
    text = verdict(outcome, notes)
    assert outcome.valid == "valid", text
    assert keys_on(target, slot) == set(fillers)
    assert not unreadable(cluster, {k: frozenset({BEFORE}) for k in fillers})
    assert not left_open, (
        f"slot {slot} {OPEN_ON_REPLICA} that was down when it ended: {'; '.join(left_open)}\n{text}"
    )


def _killed_mid_migration(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    workload: WorkloadFactory,
    *,
    kill_source: bool,
) -> None:
    """A migration interrupted by killing its source (or its target) master; its replica
    takes over, the slot is judged, repaired, judged again, and the old master rejoins."""
    source, target = cluster.initial_masters[0], cluster.initial_masters[1]
    victim = source if kill_source else target
    heir = cluster.replicas_of(victim)[0]
    wl = workload(cluster, **LOAD)
    busy = workload_slots(wl)
    mid = Interrupted(cluster, source, target, busy)
    probe = probe_slot(cluster, victim, {*busy, mid.slot} if kill_source else {*busy})

    def plan(c: Cluster, wl: Workload) -> list[str]:
        mid.start(c)
        wait_caught_up(c, victim, heir)
        c.faults.kill(victim)
        watch_failover(c, victim, heir, probe)
        live_source, live_target = (heir, target) if kill_source else (source, heir)
        notes = mid.judge_after_failover(c, live_source, live_target)
        notes += repair(c, mid.slot, batch=BATCH)
        notes += mid.judge_repaired(c)
        notes += mid.rejoin(c, victim, heir, target if kill_source else source)
        return notes

    outcome, notes = run_under_load(cluster, wl, plan, _faulted(cluster), artifacts)
    outcome.record(metrics)
    metrics.record("unreachable_after_failover", len(mid.unreachable))
    metrics.record("shard_taken_back", len(mid.taken_back))
    mid.assert_held(outcome, verdict(outcome, notes))


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=NT_FAST)
def test_source_master_killed_mid_migration(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """SHOULD: when the source master dies mid-migration and its replica takes over, keys
    already moved are on the target, the others on the promoted replica, and a client
    following redirections still reads every acknowledged value (the promoted node keeps
    the slot migrating: Valkey replicates the migration state for this,
    valkey-io/valkey#445). MUST: the migration can then be finished from the promoted
    replica (an operator's repair, as ``redis-cli --cluster fix`` does) with nothing
    lost, and no write acknowledged outside the kill's window is lost. Specification,
    "Redirection and resharding", "Replica election and promotion", "Write safety"."""
    _killed_mid_migration(cluster, metrics, artifacts, workload, kill_source=True)


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=NT_FAST)
def test_target_master_killed_mid_migration(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """SHOULD: when the target master dies mid-migration and its replica takes over, keys
    already moved are on the promoted replica (they were replicated as ``RESTORE``), the
    others on the source, and a client following redirections still reads every
    acknowledged value (the source redirects to the new target: Valkey repairs that
    link on failover, valkey-io/valkey#445). MUST: the migration can then be finished
    to the promoted replica with nothing lost, and no write acknowledged outside the
    kill's window is lost. Specification, "Redirection and resharding", "Replica
    election and promotion", "Write safety"."""
    _killed_mid_migration(cluster, metrics, artifacts, workload, kill_source=False)


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=NT_FAST)
def test_target_paused_mid_migration(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """MUST: a target frozen (SIGSTOP) for less than the node timeout while a ``MIGRATE``
    waits on it is not failed over; the ``MIGRATE`` cannot complete until it resumes,
    then does (within its own timeout), and the migration finishes with every key on
    the target and nothing lost at all. Specification, "Failure detection" (no PFAIL
    before the node timeout), "Redirection and resharding"; ``MIGRATE`` documentation
    (the source blocks until the target acknowledges or the timeout)."""
    source, target = cluster.initial_masters[0], cluster.initial_masters[1]
    wl = workload(cluster, **LOAD)
    mid = Interrupted(cluster, source, target, workload_slots(wl))
    hold_s = cluster.spec.node_timeout_ms / 2000
    assert hold_s * 1000 < MIGRATE_TIMEOUT_MS

    def plan(c: Cluster, wl: Workload) -> list[str]:
        mid.start(c, batches=1)
        done = threading.Event()
        moved: list[int] = []
        failed: list[BaseException] = []

        def batch() -> None:
            try:
                moved.append(mid.migration.move_batch())
            except BaseException as exc:  # reported below, on the test's thread
                failed.append(exc)
            finally:
                done.set()

        with c.faults.paused(target):
            worker = threading.Thread(target=batch, name="migrate-batch", daemon=True)
            worker.start()
            never(
                lambda: (done.is_set(), f"MIGRATE returned: {moved or failed}"),
                hold_s,
                f"a MIGRATE to the frozen target {target.addr} completed",
            )
        worker.join(MIGRATE_TIMEOUT_MS / 1000 + 5)
        assert done.is_set() and not failed, f"the batch after the resume: {failed}"
        assert moved == [BATCH], f"the batch in flight moved {moved}"
        mid.migration.move_all()
        mid.migration.finish()
        return mid.judge_repaired(c)

    outcome, notes = run_under_load(cluster, wl, plan, _strict_but_paused(cluster), artifacts)
    outcome.record(metrics)
    assert keys_on(target, mid.slot) == set(mid.keys) and not keys_on(source, mid.slot)
    mid.assert_held(outcome, verdict(outcome, notes))


def _strict_but_paused(cluster: Cluster) -> list[Checker]:
    """Nothing lost at all; operations on the frozen node and on the source blocked in
    ``MIGRATE`` time out, which is measured, not judged."""
    return [
        SetChecker(grace_ms=0, allow_in_window=False),
        LeftoverChecker(strict=False),
        AvailabilityChecker(shard_of(cluster)),
    ]
