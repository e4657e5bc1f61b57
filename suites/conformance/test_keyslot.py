"""Conformance: the key -> hash slot mapping. Every node must map a key to the same slot
as the specification does (CRC16/XMODEM mod 16384, hash tags), since clients compute it
themselves to pick a node; and the slot-inspection commands must agree with it.

Source: Redis Cluster specification, "Overview of Redis Cluster main components" / "Key
distribution model" and "Hash tags" (whose examples are among the edge cases below); the
``CLUSTER KEYSLOT``, ``CLUSTER COUNTKEYSINSLOT`` and ``CLUSTER GETKEYSINSLOT`` pages.
"""

from __future__ import annotations

import random

import pytest

from harness import Cluster, key_slot

# these tests only read, or write keys (flushed between tests): they share a cluster
pytestmark = pytest.mark.shares_cluster

EDGE_CASES = [
    "",
    "123456789",
    "{",
    "}",
    "{}",
    "{}{a}",
    "foo{}{bar}",
    "foo{{bar}}zap",
    "foo{bar}{zap}",
    "{user1000}.following",
    "{user1000}.followers",
    "a{b",
    "a}b{c}",
    "{{}}",
    "{ }",
    "héllo{wörld}",
    "日本語{キー}",
    "x" * 1000,
    "{" + "y" * 500 + "}tail",
]


def _keys(rng: random.Random, count: int) -> list[bytes]:
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789{}:_-"
    keys = [k.encode() for k in EDGE_CASES]
    for _ in range(count):
        n = rng.randrange(1, 40)
        keys.append(bytes(rng.choice(alphabet) for _ in range(n)))
    keys += [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))) for _ in range(count // 10)
    ]
    return keys


@pytest.mark.any_shape
@pytest.mark.cluster(masters=1, replicas=0)
def test_keyslot_matches_crc16(cluster: Cluster, rng: random.Random) -> None:
    """MUST: ``CLUSTER KEYSLOT`` returns ``CRC16(key) mod 16384`` (CRC-16/XMODEM), except
    that when the key has a ``{`` followed later by a ``}`` with at least one byte between
    the first ``{`` and the first ``}`` after it, only those bytes are hashed. Checked on
    the specification's own examples, other edge cases, thousands of random keys and binary
    keys.

    Redis Cluster specification, "Key distribution model" and "Hash tags"; the
    ``CLUSTER KEYSLOT`` page.
    """
    keys = _keys(rng, 5000)
    with cluster.node_client(cluster.nodes[0]) as c:
        pipe = c.pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("CLUSTER", "KEYSLOT", k)
        got = pipe.execute()
    wrong = [(k, s, key_slot(k)) for k, s in zip(keys, got, strict=True) if int(s) != key_slot(k)]
    assert not wrong, (
        f"{len(wrong)} of {len(keys)} keys hash differently, e.g. (key, server, spec): {wrong[:5]}"
    )


@pytest.mark.any_shape
@pytest.mark.cluster(masters=1, replicas=0)
def test_keyslot_follows_the_specification_examples(cluster: Cluster) -> None:
    """MUST: the worked examples of the specification hold on the server itself, without
    relying on the harness's own CRC16: the check value of CRC-16/XMODEM ("123456789"
    gives 0x31C3), and the hash tag rules (``{user1000}.following`` and
    ``{user1000}.followers`` share a slot; ``foo{{bar}}zap`` hashes ``{bar``;
    ``foo{bar}{zap}`` hashes ``bar``; ``{}`` is no tag).

    Redis Cluster specification, "Key distribution model" and "Hash tags".
    """
    node = cluster.nodes[0]

    def slot(key: str) -> int:
        return int(node.call("CLUSTER", "KEYSLOT", key))  # type: ignore[arg-type]

    assert slot("123456789") == 0x31C3 % 16384
    assert slot("{user1000}.following") == slot("{user1000}.followers") == slot("user1000")
    assert slot("foo{{bar}}zap") == slot("{bar")
    assert slot("foo{bar}{zap}") == slot("bar")
    assert slot("foo{}{bar}") == key_slot("foo{}{bar}") != slot("bar")


@pytest.mark.whole_keyspace("counts every key of a slot")
@pytest.mark.cluster(masters=1, replicas=0)
def test_countkeysinslot_and_getkeysinslot_follow_the_hash(cluster: Cluster) -> None:
    """MUST: keys sharing a hash tag land in one slot; ``CLUSTER COUNTKEYSINSLOT`` counts
    exactly the keys stored in it and ``CLUSTER GETKEYSINSLOT slot count`` lists them (all
    of them when ``count`` is larger).

    Redis Cluster specification, "Hash tags"; the ``CLUSTER COUNTKEYSINSLOT`` and
    ``CLUSTER GETKEYSINSLOT`` pages.
    """
    keys = [f"{{tag}}:{i}" for i in range(20)]
    client = cluster.client()
    for k in keys:
        client.set(k, "v")
    slot = key_slot("tag")
    node = cluster.nodes[0]
    assert int(node.call("CLUSTER", "COUNTKEYSINSLOT", slot)) == len(keys)  # type: ignore[arg-type]
    listed = node.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
    assert sorted(listed) == sorted(keys)  # type: ignore[arg-type]
