"""Regression: a master failed over mid-migration strands the keys already moved.

redis/redis#4627 (and #6339, #4937): the ``MIGRATING`` / ``IMPORTING`` states of a slot
live only on the two masters (``CLUSTER SETSLOT`` is not replicated and not carried
through a failover), so when the source master dies with a slot half moved, its replica
takes over the slot as plainly its own: it answers ``MOVED`` to itself (never ``ASK``)
for the keys that are already on the target, and a client reading them gets nothing,
while the target still imports the slot from a node that is gone. Nothing heals it: an
operator closes the slot (``redis-cli --cluster fix``). Affected: Redis up to 7.x (open;
Redis 8.2 adds atomic slot migration, redis/redis#14414, as the cure). Valkey replicates
the migration states to replicas and moves them on failover since 8.0
(valkey-io/valkey#445), so a client following ``ASK`` reads every key.

Recipe, as the report gives it: fill a slot, open its migration, move some of its keys,
kill the source master, let its replica take over, read every key back through
``MOVED``/``ASK``. Observable: keys acknowledged before the kill that a client following
redirections cannot read once the cluster's recovery bound has passed. The scenario
reuses the chaos suite's migration helpers (``suites/chaos/_midway.py``,
``_repair.py``), so the keys, the batches and the reads are the scaling tests' own.
"""

from __future__ import annotations

import pytest

from harness import Cluster
from harness.errors import NotReadyError
from harness.ops import SlotMigration, inspect_slots
from harness.regressions import Bug, Regression
from harness.wait import wait_for

from ..chaos._consistency import watch_failover
from ..chaos._midway import BATCH, FILL, probe_slot
from ..chaos._repair import BEFORE, Read, fill_slot, keys_on, unreadable, wait_caught_up
from ..chaos._scaling import first_free_slot, owned_slots

BUG = Bug(
    name="failover-mid-migration-strands-keys",
    reference="redis/redis#4627",
    title="after the source master fails over mid-migration, the keys already moved are "
    "unreachable (migration states are not replicated)",
    affected="Redis 3.0-7.x; Valkey before 8.0",
    fixed="Valkey 8.0 (valkey-io/valkey#445: migration states replicated)",
    observable="acknowledged keys a client following MOVED/ASK cannot read after the failover",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.destructive("moves a slot and kills its source master"),
]


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000)
def test_failover_mid_migration_strands_keys(cluster: Cluster, regression: Regression) -> None:
    """A slot of ``FILL`` keys, one batch moved, then its source master killed: once its
    replica serves the source's slots, every key must still be readable by a client that
    follows redirections (specification, "Redirection and resharding": a key is on the
    source until moved, then on the target, and ``ASK`` leads to it)."""
    source, target = cluster.initial_masters[0], cluster.initial_masters[1]
    heir = cluster.replicas_of(source)[0]
    with regression.setup("fill a slot, open its migration, move one batch"):
        slot = first_free_slot(owned_slots(cluster, source), frozenset())
        keys = fill_slot(cluster, source, slot, FILL)
        migration = SlotMigration(cluster, slot, source, target, batch=BATCH)
        migration.open()
        migration.move_batch()
        moved = keys_on(target, slot)
        assert moved and len(moved) < FILL, f"{len(moved)} of {FILL} keys moved"
        wait_caught_up(cluster, source, heir)
    with regression.setup(f"kill the source {source.addr}; its replica takes over"):
        probe = probe_slot(cluster, source, {slot})
        cluster.faults.kill(source)
        watch_failover(cluster, source, heir, probe)
    expected = {k: frozenset({BEFORE}) for k in keys}
    bad: list[Read] = []

    def readable() -> tuple[bool, str]:
        bad[:] = unreadable(cluster, expected)
        return (
            not bad,
            f"{len(bad)} keys unreadable, e.g. {bad[0].key} via {bad[0].route}" if bad else "",
        )

    try:
        wait_for(readable, cluster.recovery_s(), f"every key of slot {slot} readable")
    except NotReadyError:
        report = inspect_slots(cluster, slot)[0]
        stranded = [r for r in bad if r.key in moved]
        regression.evidence(f"slot {slot} after the failover: {report.describe()}")
        for r in bad[:3]:
            regression.evidence(f"{r.key}: {r.members} via {r.route}")
        regression.reproduced(
            f"slot {slot}: {len(bad)} of {FILL} acknowledged keys unreadable "
            f"{cluster.recovery_s():.0f} s after {heir.addr} took over ({len(stranded)} of the "
            f"{len(moved)} already moved to {target.addr})",
            unreadable=len(bad),
            moved=len(moved),
        )
        return
    regression.not_reproduced(
        f"slot {slot}: all {FILL} keys readable after {heir.addr} took over "
        f"({len(moved)} on {target.addr}, through ASK)",
        moved=len(moved),
    )
