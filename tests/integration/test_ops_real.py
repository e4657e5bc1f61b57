"""harness.ops on real servers: scaling out and in with keys, a half-done migration
reported precisely, BUSYKEY handling, a secured cluster, containers, and the shared pool
refusing a scaled cluster."""

from __future__ import annotations

import pytest

from harness import Cluster, ClusterSpec, checkers, key_for_slot
from harness import impl as impls
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.ops import (
    MigrationError,
    SlotMigration,
    add_master,
    add_replica,
    inspect_slots,
    migrate_slots,
    rebalance,
    remove_node,
)
from harness.plugin.shared import ClusterPool
from harness.testing import raw_commands

KEYS_PER_SLOT = 25


def fill(cluster: Cluster, slots: list[int], name: str) -> dict[str, str]:
    """KEYS_PER_SLOT keys in each slot (hash tags), through the cluster client."""
    client = cluster.client()
    written = {}
    for s in slots:
        tag = key_for_slot(s, prefix=f"{name}:")
        for i in range(KEYS_PER_SLOT):
            written[f"{{{tag}}}:{i}"] = f"{s}:{i}"
    for k, v in written.items():
        client.set(k, v)
    return written


def all_there(cluster: Cluster, written: dict[str, str]) -> None:
    client = cluster.client()
    got = {k: client.get(k) for k in written}
    missing = {k: v for k, v in written.items() if got[k] != v}
    assert not missing, (
        f"{len(missing)} of {len(written)} keys lost or changed, e.g. {next(iter(missing))}"
    )


def actions(cluster: Cluster) -> list[str]:
    return [e.action for e in cluster.events]


def test_scale_out_rebalance_and_back_in(any_impl: Implementation) -> None:
    """add_master, migrate_slots with keys (counted on both sides), add_replica,
    rebalance 3 -> 4 masters (4096 slots each), remove_node: every key survives, the
    cluster ends healthy with its initial members, every step is on the timeline."""
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=1, node_timeout_ms=1000)) as c:
        source = c.initial_masters[0]
        slots = [c.first_slot(source) + i for i in range(4)]
        written = fill(c, slots, "scale")
        new = add_master(c)
        assert new in c.nodes and new not in c.initial_masters

        assert migrate_slots(c, source, new, slots, batch=10) == 4 * KEYS_PER_SLOT
        for r in inspect_slots(c, slots):
            assert r.settled(new.node_id or ""), r.describe()
            assert (r.keys_on(source.node_id or ""), r.keys_on(new.node_id or "")) == (
                0,
                KEYS_PER_SLOT,
            ), r.describe()

        replica = add_replica(c, new)
        assert c.probe_replica_of(replica, new)[0]
        rebalance(c)
        view = c.view(c.nodes[0], with_shards=False)
        assert sorted(e.slot_count for e in view.nodes if e.is_master) == [4096] * 4
        all_there(c, written)

        remove_node(c, new)
        assert new not in c.nodes and c.retired == [new] and new.state == "stopped"
        c.wait_ready()  # counts the remaining nodes: the replica added stays, elsewhere
        view = c.view(c.nodes[0], with_shards=False)
        assert sum(1 for e in view.nodes if e.is_master and e.slots) == 3
        assert new.node_id not in view.by_id()
        all_there(c, written)
        # the initial layout still reads as formed
        for r in c.initial_replicas:
            assert c.initial_master_of(r) in c.initial_masters
        with pytest.raises(HarnessError, match="was no replica at formation"):
            c.initial_master_of(replica)
        remove_node(c, replica)  # a replica: nothing to drain, forgotten by its master too
        assert c.retired == [new, replica] and len(c.nodes) == 6
        c.wait_ready()
        for op in (
            "add-master",
            "migrate-slots",
            "add-replica",
            "rebalance",
            "remove-node",
            "forget",
        ):
            assert op in actions(c) and f"{op}-done" in actions(c), op


def test_a_half_done_migration_is_reported_precisely(any_impl: Implementation) -> None:
    """A SlotMigration stopped after one batch: inspect_slots shows both markers and the
    keys on each side; finish() refuses while the source holds keys, and its error names
    the slot, the counts and what is open; the rest of the steps complete it."""
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=0)) as c:
        source, target = c.initial_masters[0], c.initial_masters[1]
        slot = c.first_slot(source)
        written = fill(c, [slot], "half")
        with pytest.raises(
            MigrationError, match=f"does not own 1 of the slots to move, first slot {slot}"
        ):
            SlotMigration(c, slot, target, source).open()  # the wrong way round
        (r,) = inspect_slots(c, slot)
        assert not r.is_open, r.describe()
        m = SlotMigration(c, slot, source, target, batch=10)
        m.open()
        assert m.move_batch() == 10 and m.keys_moved == 10

        (r,) = inspect_slots(c, slot)
        src, dst = source.node_id or "", target.node_id or ""
        assert r.migrating == {src: dst} and r.importing == {dst: src}
        assert (r.keys_on(src), r.keys_on(dst)) == (KEYS_PER_SLOT - 10, 10)
        assert r.agreed_owner == src and not r.hidden
        with pytest.raises(MigrationError) as err:
            m.finish()
        text = str(err.value)
        assert f"slot {slot}" in text and f"{source.addr}={KEYS_PER_SLOT - 10}" in text
        assert f"{target.addr}=10" in text and f"{source.addr} migrating to {target.addr}" in text
        assert err.value.reports and err.value.reports[0].slot == slot

        assert m.move_all() == KEYS_PER_SLOT - 10
        m.finish()
        (r,) = inspect_slots(c, slot)
        assert r.settled(dst) and r.keys_on(dst) == KEYS_PER_SLOT, r.describe()
        all_there(c, written)
        assert [a for a in actions(c) if a.startswith("migrate-open")] == [
            "migrate-open",
            "migrate-open-failed",  # the wrong way round
            "migrate-open",
            "migrate-open-done",
        ]
        assert "migrate-finish-failed" in actions(c) and "migrate-finish-done" in actions(c)


def test_busy_keys_are_replaced_only_when_equal_or_asked(any_impl: Implementation) -> None:
    """A key the target already holds (BUSYKEY): with the same value it is replaced
    (nothing is lost); with another value the migration stops naming it, unless
    replace=True."""
    with Cluster.start(any_impl, ClusterSpec(masters=2, replicas=0)) as c:
        source, target = c.initial_masters
        slot = c.first_slot(source)
        written = fill(c, [slot], "busy")
        same, other = sorted(written)[:2]
        m = SlotMigration(c, slot, source, target, batch=KEYS_PER_SLOT)
        m.open()
        # the importing target takes writes for the slot only after ASKING
        for key, value in ((same, written[same]), (other, "not the same")):
            _, reply = raw_commands(target, ("ASKING",), ("SET", key, value))
            assert reply == "OK", reply
        with pytest.raises(MigrationError, match=r"1 key\(s\) exist on both sides") as err:
            m.move_batch()
        assert repr(other) in str(err.value) and repr(same) not in str(err.value)
        (r,) = inspect_slots(c, slot)
        assert r.keys_on(source.node_id or "") == 1, r.describe()  # only the differing one

        m.replace = True
        assert m.move_all() == 1
        m.finish()
        client = c.client()
        assert client.get(other) == written[other]  # the source's value won
        assert client.get(same) == written[same]


TLS_IMPLS = ("redis-7.0", "valkey-8.0")


@pytest.mark.parametrize("name", TLS_IMPLS)
def test_migration_on_an_acl_and_tls_cluster(name: str) -> None:
    """MIGRATE authenticates to the target as the harness's ACL user (AUTH2) over the
    TLS cluster bus settings; add_master joins a TLS node."""
    found = impls.available(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    with Cluster.start(found, ClusterSpec(masters=2, replicas=1, auth="acl", tls=True)) as c:
        source = c.initial_masters[0]
        slots = [c.first_slot(source), c.first_slot(source) + 1]
        written = fill(c, slots, "secure")
        new = add_master(c)
        assert migrate_slots(c, source, new, slots) == 2 * KEYS_PER_SLOT
        all_there(c, written)
        assert checkers.healthy(c.snapshot()).ok


@pytest.fixture(scope="module")
def one_impl() -> Implementation:
    for name in ("redis-7.0", "valkey-8.0", "redis-6.2"):
        found = impls.available(name)
        if found is not None:
            return found
    pytest.skip("no verified server is installed")


def test_the_shared_pool_never_hands_out_a_scaled_cluster(one_impl: Implementation) -> None:
    """A test that added a master (even an empty one, leaving the slot map as it was)
    gets its shared cluster replaced: the next test starts from the formed layout."""
    pool = ClusterPool()
    settings = {"masters": 3, "replicas": 0}
    try:

        def start() -> Cluster:
            return Cluster.start(one_impl, ClusterSpec(masters=3, replicas=0))

        first = pool.get(settings, start, "t1")
        add_master(first)
        why = pool.release(settings, "t1")
        assert why is not None and "its nodes changed: n0 n1 n2 -> n0 n1 n2 n3" in why, why
        second = pool.get(settings, start, "t2")
        assert second is not first and len(second.nodes) == 3
        assert pool.release(settings, "t2") is None
    finally:
        pool.close()


def test_add_master_and_migrate_on_containers(one_impl: Implementation) -> None:
    """The docker backend adds a container on the cluster's network; MIGRATE reaches it
    at the address it announces."""
    try:
        from harness import images

        images.docker_client().close()
    except (ImportError, HarnessError) as exc:
        pytest.skip(f"needs a reachable Docker: {exc}")
    with Cluster.start(one_impl, ClusterSpec(masters=3, replicas=0), backend="docker") as c:
        source = c.initial_masters[2]
        slot = c.first_slot(source)
        written = fill(c, [slot], "docker")
        new = add_master(c)
        assert new.backend_name == "docker"
        assert migrate_slots(c, source, new, [slot]) == KEYS_PER_SLOT
        (r,) = inspect_slots(c, slot)
        assert r.settled(new.node_id or "") and r.keys_on(new.node_id or "") == KEYS_PER_SLOT
        all_there(c, written)
