"""Conformance: nodes redirect clients with MOVED to the owner, and refuse cross-slot ops."""

from __future__ import annotations

import random

import pytest
import redis

from harness import Cluster, key_for_slot, key_slot


def _moved(exc: redis.exceptions.ResponseError) -> tuple[int, str]:
    """MOVED <slot> <host>:<port>; redis-py strips the error code in MovedError."""
    parts = str(exc).split()
    if parts and parts[0] == "MOVED":
        parts = parts[1:]
    return int(parts[0]), parts[1]


def test_wrong_master_answers_moved_to_the_owner(cluster: Cluster, rng: random.Random) -> None:
    for _ in range(30):
        slot = rng.randrange(16384)
        key = key_for_slot(slot, prefix="moved:")
        owner = cluster.owner_of_slot(slot)
        others = [m for m in cluster.initial_masters if m is not owner]
        wrong = rng.choice(others)
        with cluster.node_client(wrong) as c, pytest.raises(redis.exceptions.ResponseError) as err:
            c.execute_command("SET", key, "v")
        got_slot, got_addr = _moved(err.value)
        assert "MOVED" in type(err.value).__name__.upper() or str(err.value).startswith("MOVED"), (
            str(err.value)
        )
        assert got_slot == slot == key_slot(key), (
            f"{wrong.addr} said slot {got_slot} for {key!r}, spec says {slot}"
        )
        assert got_addr == owner.addr, (
            f"{wrong.addr} redirected slot {slot} to {got_addr}, owner is {owner.addr}"
        )


def test_replica_redirects_writes_and_reads_to_its_master(cluster: Cluster) -> None:
    replica = cluster.initial_replicas[0]
    master = cluster.initial_master_of(replica)
    lo = int(cluster.view(master).myself.slots[0][0])  # type: ignore[union-attr]
    key = key_for_slot(lo, prefix="replica:")
    with cluster.node_client(replica) as c:
        for args in (("SET", key, "v"), ("GET", key)):
            with pytest.raises(redis.exceptions.ResponseError) as err:
                c.execute_command(*args)
            assert _moved(err.value) == (lo, master.addr), (
                f"{args[0]} on replica {replica.addr}: {err.value}"
            )


def test_readonly_replica_serves_reads_of_its_slots(cluster: Cluster) -> None:
    replica = cluster.initial_replicas[0]
    master = cluster.initial_master_of(replica)
    lo = int(cluster.view(master).myself.slots[0][0])  # type: ignore[union-attr]
    key = key_for_slot(lo, prefix="ro:")
    with cluster.node_client(master) as m:
        m.execute_command("SET", key, "value")
        m.execute_command("WAIT", 1, 2000)
    with cluster.node_client(replica) as c:
        pipe = c.pipeline(transaction=False)  # one connection: READONLY is per connection
        pipe.execute_command("READONLY")
        pipe.execute_command("GET", key)
        assert pipe.execute()[1] == "value"


def test_multi_key_commands_need_one_slot(cluster: Cluster) -> None:
    a, b = "cross:a", "cross:b"
    assert key_slot(a) != key_slot(b)
    owner = cluster.owner_of_slot(key_slot(a))
    with cluster.node_client(owner) as c:
        with pytest.raises(redis.exceptions.ResponseError) as err:
            c.execute_command("MSET", a, 1, b, 2)
        assert (
            "CROSSSLOT" in str(err.value).upper()
            or "CROSSSLOT" in type(err.value).__name__.upper()
            or str(err.value).startswith("Keys in request")
        ), str(err.value)
    client = cluster.client()
    assert client.mset({"{same}:a": 1, "{same}:b": 2})
    assert client.mget("{same}:a", "{same}:b") == ["1", "2"]


def test_cluster_client_reaches_every_master(cluster: Cluster) -> None:
    client = cluster.client()
    for i in range(300):
        client.set(f"spread:{i}", i)
    for m in cluster.initial_masters:
        assert int(m.call("DBSIZE")) > 0, f"{m.addr} received none of 300 spread keys"  # type: ignore[arg-type]
    assert sum(int(m.call("DBSIZE")) for m in cluster.initial_masters) == 300  # type: ignore[arg-type]
