"""Conformance: the server hashes keys to slots exactly like the specification."""

from __future__ import annotations

import random

import pytest

from harness import Cluster, key_slot

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


@pytest.mark.cluster(masters=1, replicas=0)
def test_keyslot_matches_crc16(cluster: Cluster, rng: random.Random) -> None:
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


@pytest.mark.cluster(masters=1, replicas=0)
def test_countkeysinslot_and_getkeysinslot_follow_the_hash(cluster: Cluster) -> None:
    keys = [f"{{tag}}:{i}" for i in range(20)]
    client = cluster.client()
    for k in keys:
        client.set(k, "v")
    slot = key_slot("tag")
    node = cluster.nodes[0]
    assert int(node.call("CLUSTER", "COUNTKEYSINSLOT", slot)) == len(keys)  # type: ignore[arg-type]
    listed = node.call("CLUSTER", "GETKEYSINSLOT", slot, 100)
    assert sorted(listed) == sorted(keys)  # type: ignore[arg-type]
