"""Pre-upgrade verification: a rolling upgrade from ``--upgrade-from`` to ``--upgrade-to``,
rehearsed under a recorded workload, checked after every step (coverage and agreement,
one primary per shard in ``CLUSTER SHARDS``, replicas linked and caught up, versions,
the server's own ``--cluster check``, a restart of the node just upgraded).

Sources: Redis "Upgrade a Redis cluster" (one node at a time, replicas first, then a
manual failover, then the old primary; verify with ``INFO server``, ``CLUSTER INFO``,
``redis-cli --cluster check``); Valkey cluster tutorial, "Upgrade nodes in a Valkey
Cluster" (new-version replicas, ``master_link_status:up`` and equal offsets, ``CLUSTER
FAILOVER``, retire the old primary); the ``CLUSTER FAILOVER`` page (a manual failover
without FORCE/TAKEOVER waits until the replica processed the primary's whole stream, so
it loses no acknowledged write).

Run with ``python -m harness upgrade --from A --to B`` (or ``run --suite upgrade
--upgrade-to B``); without a target every test here skips.
"""

from __future__ import annotations

import pytest

from harness.plugin import Upgrade
from harness.upgrade.plan import SAFE_PLANS

pytestmark = pytest.mark.destructive("restarts every node on another server version")


def _wanted(upgrade: Upgrade, kind: str) -> None:
    if upgrade.plan is not None and upgrade.plan != kind:
        pytest.skip(f"--upgrade-plan {upgrade.plan}")


@pytest.mark.parametrize("kind", SAFE_PLANS)
def test_rolling_upgrade_in_the_documented_order_loses_no_acknowledged_write(
    upgrade: Upgrade, kind: str
) -> None:
    """MUST: a rolling upgrade in the documented order (``in-place``: replicas first,
    ``CLUSTER FAILOVER`` to an upgraded replica, then the demoted primary; ``replace``:
    new-version replicas, synced, a failover, the old nodes removed) completes every
    step with every slot covered and the nodes agreeing after each, and loses no
    acknowledged write outside the failover windows. A risk a step meets (a demoted
    primary that cannot resync from a newer one) is named from the node's log.

    Redis "Upgrade a Redis cluster"; Valkey cluster tutorial; ``CLUSTER FAILOVER``.
    """
    _wanted(upgrade, kind)
    r = upgrade.rehearse(kind)
    assert r.verdict == "safe", r.summary()
    assert r.lost_outside_windows == 0, r.summary()


@pytest.mark.parametrize("kind", SAFE_PLANS)
def test_rollback_outcome_is_explained(upgrade: Upgrade, kind: str) -> None:
    """SHOULD (rehearsal): with ``--rollback`` the same plan is carried out back, from the
    new version to the old, and its outcome is what the servers do: a safe downgrade, or
    an unsafe one *explained*: by a named risk from a node's log (an RDB or
    ``nodes.conf`` the old version refuses, a replica that cannot sync from a newer
    primary) or by the acknowledged writes it lost. The upgrade itself must be safe.

    RDB format compatibility (a server refuses a newer RDB version: ``rdbLoad``); Redis
    "Upgrade a Redis cluster" (keep the old version's data to go back).
    """
    _wanted(upgrade, kind)
    if not upgrade.rollback:
        pytest.skip("no --rollback")
    r = upgrade.rehearse(kind, rollback=True)
    assert r.verdict == "safe", r.summary()
    back = r.rollback
    assert back is not None
    if back.verdict == "unsafe":
        assert back.risks or back.lost_outside_windows, (
            "the rollback is unsafe and no risk explains why:\n" + back.summary()
        )


def test_primary_first_upgrade_is_reported_unsafe_with_its_losses(upgrade: Upgrade) -> None:
    """MUST (the checks catch an unsafe procedure): restarting each primary first, on a
    cluster without persistence, brings it back empty; its replica resyncs the empty
    dataset. The rehearsal must report ``unsafe`` and count the acknowledged writes lost
    outside any failover window.

    Redis "Upgrade a Redis cluster" (replicas first); "Redis replication" ("Safety of
    replication when master has persistence turned off").
    """
    _wanted(upgrade, "in-place-primaries-first")
    r = upgrade.rehearse("in-place-primaries-first", persistence="none", replicas=1)
    assert r.verdict == "unsafe", r.summary()
    assert r.lost_outside_windows > 0, r.summary()


def test_takeover_before_the_first_sync_is_reported_unsafe(upgrade: Upgrade) -> None:
    """MUST (the checks catch an unsafe procedure): a new-version replica that takes over
    with ``CLUSTER FAILOVER TAKEOVER`` before its first sync finished becomes the
    primary with an empty dataset, and the old primary, now its replica, resyncs it.
    The rehearsal must report ``unsafe`` with the lost writes counted.

    ``CLUSTER FAILOVER`` (TAKEOVER: no agreement, no replication offset check); Valkey
    cluster tutorial (wait for ``master_link_status:up`` before the failover).
    """
    _wanted(upgrade, "replace-unsynced")
    r = upgrade.rehearse("replace-unsynced", persistence="none")
    assert r.verdict == "unsafe", r.summary()
    assert r.lost_outside_windows > 0, r.summary()
