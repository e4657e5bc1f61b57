"""Conformance: which slots a client can reach. With a shard down (a master with no
replica, so no failover brings its slots back) ``cluster-require-full-coverage`` decides
whether the rest of the cluster keeps serving the slots it still covers, and
``cluster-allow-reads-when-down`` whether a down cluster still serves reads. And a client
that knows a single live node of the cluster finds all of it.

The exact ``CLUSTERDOWN`` message differs between servers: the tests match the code and
record the text (metrics ``*_reply``).

Source: ``redis.conf`` / ``valkey.conf`` comments of ``cluster-require-full-coverage`` and
``cluster-allow-reads-when-down``; Redis Cluster specification, "Fault Tolerance" /
"Failure detection" (FAIL flag), "Redirection and resharding" / "MOVED Redirection" and
"Clients first connection and handling of redirections" (a client fetches the map from
any node it can reach); the ``CLUSTER SLOTS`` page.
"""

from __future__ import annotations

import random

import pytest

from harness import Cluster, guard, key_for_slot
from harness.backends import Node
from harness.plugin.state import HarnessState
from harness.ports import PortLease
from harness.testing import ErrorReply, Metrics, Reply, never, raw_commands, wait_for
from harness.topology import parse_info

#: shape of the tests that lose a shard: no replica, so no failover brings it back
NO_REPLICAS = {"masters": 3, "replicas": 0, "node_timeout_ms": 1000}
KILLS = pytest.mark.destructive("kills a master that has no replica")


def _get_set(node: Node, key: str) -> tuple[Reply, Reply]:
    """A read and a write of ``key`` on ``node``, as the server replied."""
    got, put = raw_commands(node, ("GET", key), ("SET", key, key))
    return got, put


def _lose_a_shard(cluster: Cluster) -> tuple[Node, list[Node], dict[Node, str]]:
    """Write one key to each master, kill the first master and wait until every other
    node flags it FAIL. Returns it, the survivors and their keys."""
    dead, *alive = cluster.initial_masters
    keys = {m: key_for_slot(cluster.first_slot(m), prefix="cover:") for m in alive}
    for m, k in keys.items():
        m.call("SET", k, k)
    cluster.faults.kill(dead)
    wait_for(
        lambda: cluster.probe_flagged_failed(dead),
        cluster.recovery_s(),
        f"{dead.addr} flagged FAIL by every live node",
    )
    cluster.record("fail-flag", dead.addr)
    return dead, alive, keys


def _states(nodes: list[Node]) -> dict[str, str]:
    """``cluster_state`` as each node reports it."""
    return {
        n.addr: parse_info(str(n.call("CLUSTER", "INFO"))).get("cluster_state", "?") for n in nodes
    }


def _wait_state(cluster: Cluster, nodes: list[Node], want: str) -> None:
    def probe() -> tuple[bool, dict[str, str]]:
        seen = _states(nodes)
        return all(v == want for v in seen.values()), seen

    wait_for(probe, cluster.recovery_s(), f"cluster_state:{want} on every live node")


def _unserved(cluster: Cluster, node: Node, dead: Node) -> str:
    """What ``node`` answers for a key of the dead master's slots: never served, either
    ``MOVED`` to the slot's (failed) owner, which the map still names, or ``CLUSTERDOWN``."""
    slot = cluster.view(node, with_shards=False).slot_owners().index(dead.node_id)
    key = key_for_slot(slot, prefix="cover:")
    (got,) = raw_commands(node, ("GET", key))
    moved = f"MOVED {slot} {dead.public_addr}"
    assert isinstance(got, ErrorReply) and (got.text == moved or got.code == "CLUSTERDOWN"), (
        f"{node.addr} on a key of the lost shard's slot {slot}: {got!r}"
    )
    return got.text.replace(dead.public_addr, "<failed owner>")


@KILLS
@pytest.mark.cluster(**NO_REPLICAS, server_args={"cluster-require-full-coverage": "no"})
def test_partial_coverage_keeps_serving_covered_slots(cluster: Cluster, metrics: Metrics) -> None:
    """MUST: with ``cluster-require-full-coverage no``, a cluster that lost a whole shard
    stays ``cluster_state:ok`` and keeps serving reads and writes of the slots still
    covered, for as long as the shard is down (watched for one node timeout); keys of
    the lost slots are not served.

    ``redis.conf`` comment of ``cluster-require-full-coverage`` (set to ``no``, the part
    of the cluster still working keeps accepting queries for the key space it covers).
    """
    dead, alive, keys = _lose_a_shard(cluster)

    def serving() -> None:
        assert set(_states(alive).values()) == {"ok"}, _states(alive)
        for m, k in keys.items():
            got, put = _get_set(m, k)
            assert got == k.encode() and put == "OK", f"{m.addr} on covered {k}: {got!r}, {put!r}"

    never(serving, cluster.spec.node_timeout_ms / 1000, "a covered slot refused")
    metrics.record("uncovered_reply", _unserved(cluster, alive[0], dead))


@KILLS
@pytest.mark.cluster(**NO_REPLICAS, server_args={"cluster-require-full-coverage": "yes"})
def test_full_coverage_stops_serving_when_a_slot_is_lost(
    cluster: Cluster, metrics: Metrics
) -> None:
    """MUST: with ``cluster-require-full-coverage yes`` (the default), once a slot is no
    longer covered (its only master FAIL) every node turns ``cluster_state:fail`` and
    refuses reads and writes of the slots it still owns with ``-CLUSTERDOWN``.

    ``redis.conf`` comment of ``cluster-require-full-coverage`` (by default nodes stop
    accepting queries when at least one hash slot is uncovered); Redis Cluster
    specification, "Failure detection" (FAIL).
    """
    _dead, alive, keys = _lose_a_shard(cluster)
    _wait_state(cluster, alive, "fail")
    texts = set()
    for m, k in keys.items():
        for r in _get_set(m, k):
            assert isinstance(r, ErrorReply) and r.code == "CLUSTERDOWN", (
                f"{m.addr} on {k} of a down cluster: {r!r}"
            )
            texts.add(r.text)
    metrics.record("clusterdown_reply", " | ".join(sorted(texts)))


@KILLS
@pytest.mark.cluster(
    **NO_REPLICAS,
    server_args={"cluster-require-full-coverage": "yes", "cluster-allow-reads-when-down": "yes"},
)
def test_reads_when_down_serves_reads_and_refuses_writes(
    cluster: Cluster, metrics: Metrics
) -> None:
    """MUST: with ``cluster-allow-reads-when-down yes`` a node of a down cluster
    (``cluster_state:fail``) still serves reads of the slots it owns, and refuses writes
    with ``-CLUSTERDOWN``; keys of the lost slots are not served.

    ``redis.conf`` comment of ``cluster-allow-reads-when-down`` (reads are allowed during
    the fail state, as long as the node believes it owns the slots, while inconsistent
    writes stay prevented).
    """
    dead, alive, keys = _lose_a_shard(cluster)
    _wait_state(cluster, alive, "fail")
    texts = set()
    for m, k in keys.items():
        got, put = _get_set(m, k)
        assert got == k.encode(), f"{m.addr} on a read of {k} while down: {got!r}"
        assert isinstance(put, ErrorReply) and put.code == "CLUSTERDOWN", (
            f"{m.addr} on a write of {k} while down: {put!r}"
        )
        texts.add(put.text)
    metrics.record("write_reply", " | ".join(sorted(texts)))
    metrics.record("uncovered_reply", _unserved(cluster, alive[0], dead))


def _slots_replicas(node: Node, want: list[str]) -> tuple[bool, list[str]]:
    """Does ``node``'s ``CLUSTER SLOTS`` list exactly the replicas ``want``?"""
    reply = node.call("CLUSTER", "SLOTS")
    assert isinstance(reply, list), f"{node.addr}: CLUSTER SLOTS replied {reply!r}"
    seen = sorted({f"{r[0]}:{r[1]}" for entry in reply for r in entry[3:]})
    return seen == want, seen


@pytest.mark.shares_cluster
@pytest.mark.any_shape
def test_client_finds_the_cluster_from_one_live_startup_node(
    cluster: Cluster, rng: random.Random, harness_state: HarnessState
) -> None:
    """MUST: a cluster client given one reachable node among unreachable addresses learns
    the whole map from it: every master, every replica, an owner for each of the 16384
    slots (the owner ``CLUSTER NODES`` names), and then reads and writes keys on every
    master directly. redis-py ``RedisCluster`` is the client. (A replica that holds no
    data yet may be left out of ``CLUSTER SLOTS``, redis/redis#9287: the test first waits
    until the seed lists every replica.)

    Redis Cluster specification, "Clients first connection and handling of
    redirections" (a client connects to any node and fetches the map with ``CLUSTER
    SLOTS`` / ``CLUSTER SHARDS``); the ``CLUSTER SLOTS`` page.
    """
    live = rng.choice(cluster.live_nodes())
    lease = PortLease()
    dead = [("127.0.0.1", p) for p in lease.claim(2, rng)]  # held, never listened on
    seeds = [dead[0], (live.public_host, live.public_port), dead[1]]
    opts = {"decode_responses": True, "socket_timeout": 5.0, "socket_connect_timeout": 1.0}
    masters = cluster.masters()
    keys = {
        m: key_for_slot(cluster.first_slot(m), prefix=harness_state.key_prefix) for m in masters
    }
    want = sorted(r.public_addr for m in masters for r in cluster.replicas_of(m))
    # A replica enters CLUSTER SLOTS once the seed has heard a replication offset from it
    # (replicas without data are hidden: redis/redis#9287); right after bring-up that
    # takes a gossip round.
    wait_for(
        lambda: _slots_replicas(live, want),
        cluster.recovery_s(),
        f"{live.addr} listing every replica",
    )
    try:
        with guard.granted(dead):
            client = guard.cluster_client(seeds, **opts, **cluster.security.redis_kwargs())
            try:
                primaries = sorted(n.name for n in client.get_primaries())  # type: ignore[no-untyped-call]
                assert primaries == sorted(m.public_addr for m in masters), (
                    f"seeded with {live.addr} only, the client found masters {primaries}"
                )
                replicas = sorted(n.name for n in client.get_replicas())  # type: ignore[no-untyped-call]
                assert replicas == want, f"the client found replicas {replicas}"
                owners = cluster.view(live, with_shards=False).slot_owners()
                cache = client.nodes_manager.slots_cache
                wrong = [
                    s
                    for s, o in enumerate(owners)
                    if o is None
                    or not cache.get(s)
                    or cache[s][0].name != cluster.node_by_id(o).public_addr
                ]
                assert not wrong, (
                    f"{len(wrong)} slots mapped wrongly or not at all, first {wrong[:5]}"
                )
                for m, k in keys.items():
                    assert client.set(k, m.name)
                    assert m.call("GET", k) == m.name, f"{k} not written on its owner {m.addr}"
                    assert client.get(k) == m.name
            finally:
                for k in keys.values():
                    client.delete(k)
                client.close()
    finally:
        lease.release()
