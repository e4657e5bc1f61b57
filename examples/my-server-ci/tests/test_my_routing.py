"""Our server's routing rules, checked on a real cluster the harness starts for each test
(the `cluster` fixture: 3 masters with a replica each unless a marker says otherwise).

The harness's own suites check the general Redis Cluster contract
(`redis-cluster-harness run`, or `pytest --pyargs harness.suites.conformance`); these are
the rules our clients rely on.
"""

from __future__ import annotations

import pytest

from harness import Cluster, key_for_slot, key_slot
from harness.testing import expect_error


def test_a_users_keys_share_a_slot_and_multi_key_commands_work(cluster: Cluster) -> None:
    """Our rule: every key of a user carries the hash tag ``{user:ID}``, so MSET/MGET of
    one user's keys never answer CROSSSLOT."""
    keys = ["{user:42}:name", "{user:42}:email", "{user:42}:plan"]
    assert len({key_slot(k) for k in keys}) == 1
    client = cluster.client()
    client.mset({k: f"value of {k}" for k in keys})
    assert client.mget(keys) == [f"value of {k}" for k in keys]


def test_a_key_asked_of_the_wrong_master_is_redirected(cluster: Cluster) -> None:
    """Our clients follow ``-MOVED <slot> <host>:<port>``: a master that does not own a
    slot must send them to the owner the cluster announces."""
    slot = 1234
    key = key_for_slot(slot, prefix="routing:")
    owner = cluster.owner_of_slot(slot)
    wrong = next(m for m in cluster.initial_masters if m is not owner)
    assert expect_error(wrong, "GET", key, code="MOVED") == f"MOVED {slot} {owner.public_addr}"


@pytest.mark.cluster(masters=2, replicas=0)
@pytest.mark.requires("cluster_shards")  # skipped, with the reason, where it is missing
def test_cluster_shards_lists_every_master(cluster: Cluster) -> None:
    """Our dashboard reads CLUSTER SHARDS: it must list one shard per master."""
    with cluster.node_client(cluster.nodes[0]) as c:
        shards = c.execute_command("CLUSTER", "SHARDS")
    assert len(shards) == 2
