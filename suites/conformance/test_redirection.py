"""Conformance: how nodes route clients. A node serves the keys of the slots it owns and
redirects every other query with ``-MOVED <slot> <endpoint>:<port>`` to the owner as the
cluster announces it; replicas redirect to their master unless the connection is in
``READONLY`` mode; a command whose keys hash to different slots is refused with
``CROSSSLOT``.

Source: Redis Cluster specification, "Redirection and resharding" ("MOVED Redirection",
"Multi-keys operations", "Scaling reads using replica nodes") and "Implemented subset";
the ``READONLY`` command page.
"""

from __future__ import annotations

import random

import pytest

from harness import Cluster, key_for_slot, key_slot
from harness.testing import expect_error

# these tests only read, or write keys (flushed between tests): they share a cluster
pytestmark = pytest.mark.shares_cluster


def test_wrong_master_answers_moved_to_the_owner(cluster: Cluster, rng: random.Random) -> None:
    """MUST: a master asked about a key of a slot it does not serve replies
    ``-MOVED <slot> <endpoint>:<port>``: the key's hash slot, and the address the owner
    announces (``Node.public_addr``), so the client can reissue the query there.

    Redis Cluster specification, "Redirection and resharding" / "MOVED Redirection".
    """
    for _ in range(30):
        slot = rng.randrange(16384)
        key = key_for_slot(slot, prefix="moved:")
        assert key_slot(key) == slot, f"harness bug: {key!r} is not in slot {slot}"
        owner = cluster.owner_of_slot(slot)
        wrong = rng.choice([m for m in cluster.initial_masters if m is not owner])
        got = expect_error(wrong, "SET", key, "v", code="MOVED")
        assert got == f"MOVED {slot} {owner.public_addr}", (
            f"{wrong.addr} on SET {key!r} (slot {slot}, owner {owner.public_addr})"
        )


def test_replica_redirects_writes_and_reads_to_its_master(cluster: Cluster) -> None:
    """MUST: a replica is free to be queried, but by default it redirects both writes and
    reads of its master's slots to the master with ``-MOVED``.

    Redis Cluster specification, "Redirection and resharding" / "MOVED Redirection"
    (queries may go to every node, including replicas) and "Scaling reads using replica
    nodes" (replicas normally redirect to the authoritative master).
    """
    replica = cluster.initial_replicas[0]
    master = cluster.initial_master_of(replica)
    lo = cluster.first_slot(master)
    key = key_for_slot(lo, prefix="replica:")
    for args in (("SET", key, "v"), ("GET", key)):
        got = expect_error(replica, *args, code="MOVED")
        assert got == f"MOVED {lo} {master.public_addr}", f"{args[0]} on replica {replica.addr}"


@pytest.mark.destructive("writes keys of fixed names, outside the run's prefix")
def test_readonly_replica_serves_reads_of_its_slots(cluster: Cluster) -> None:
    """MUST: after ``READONLY`` a replica serves reads of its master's slots on that
    connection (possibly stale: the test waits for the write to replicate first), and still
    redirects with ``-MOVED`` what it cannot serve: writes, and keys of slots its master
    does not own.

    Redis Cluster specification, "Redirection and resharding" / "Scaling reads using
    replica nodes"; the ``READONLY`` command page.
    """
    replica = cluster.initial_replicas[0]
    master = cluster.initial_master_of(replica)
    lo = cluster.first_slot(master)
    key = key_for_slot(lo, prefix="ro:")
    with cluster.node_client(master) as m:
        m.execute_command("SET", key, "value")
        m.execute_command("WAIT", 1, 2000)
    with cluster.node_client(replica) as c:
        pipe = c.pipeline(transaction=False)  # one connection: READONLY is per connection
        pipe.execute_command("READONLY")
        pipe.execute_command("GET", key)
        assert pipe.execute()[1] == "value"

    readonly = [("READONLY",)]
    got = expect_error(replica, "SET", key, "v", before=readonly)
    assert got == f"MOVED {lo} {master.public_addr}", f"a write on a READONLY {replica.addr}"
    other = next(m for m in cluster.initial_masters if m is not master)
    other_slot = cluster.first_slot(other)
    other_key = key_for_slot(other_slot, prefix="ro:")
    got = expect_error(replica, "GET", other_key, before=readonly)
    assert got == f"MOVED {other_slot} {other.public_addr}", (
        f"READONLY {replica.addr} reading a slot of another master"
    )


@pytest.mark.destructive("writes keys of fixed names, outside the run's prefix")
def test_multi_key_commands_need_one_slot(cluster: Cluster) -> None:
    """MUST: a multi-key command is served only when all its keys hash to one slot;
    otherwise the node refuses it with a ``CROSSSLOT`` error (the message after the code
    differs between servers), even on the owner of some of the keys. Keys sharing a hash
    tag share a slot, so the same command with tagged keys succeeds.

    Redis Cluster specification, "Implemented subset", "Redirection and resharding" /
    "Multi-keys operations", and "Hash tags".
    """
    a, b = "cross:a", "cross:b"
    assert key_slot(a) != key_slot(b)
    owner = cluster.owner_of_slot(key_slot(a))
    got = expect_error(owner, "MSET", a, 1, b, 2, code="CROSSSLOT")
    assert got.startswith("CROSSSLOT "), got
    client = cluster.client()
    assert client.mset({"{same}:a": 1, "{same}:b": 2})
    assert client.mget("{same}:a", "{same}:b") == ["1", "2"]


@pytest.mark.whole_keyspace("counts every key of each master")
def test_cluster_client_reaches_every_master(cluster: Cluster) -> None:
    """MUST: every key lives on the master that owns its hash slot, so a client routing by
    slot stores each write exactly once, on that master. SHOULD: CRC16 spreads ordinary
    keys over all masters (300 keys leave none of 3 masters empty).

    Redis Cluster specification, "Overview of Redis Cluster main components" / "Key
    distribution model".
    """
    client = cluster.client()
    keys = [f"spread:{i}" for i in range(300)]
    for i, k in enumerate(keys):
        client.set(k, i)
    for m in cluster.initial_masters:
        assert int(m.call("DBSIZE")) > 0, f"{m.addr} received none of 300 spread keys"  # type: ignore[arg-type]
    assert sum(int(m.call("DBSIZE")) for m in cluster.initial_masters) == 300  # type: ignore[arg-type]
    owners = cluster.view(cluster.nodes[0], with_shards=False).slot_owners()
    for m in cluster.initial_masters:
        mine = [k for k in keys if owners[key_slot(k)] == m.node_id]
        assert int(m.call("DBSIZE")) == len(mine), (  # type: ignore[arg-type]
            f"{m.addr} holds {m.call('DBSIZE')} keys, owns the slots of {len(mine)}"
        )
