"""Conformance: redirection in detail, beyond the basic ``MOVED`` of ``test_redirection``.
Every key-based command family is redirected alike, because the node routes by the keys
the command names, not by what the command does; a replica in ``READONLY`` mode serves
multi-key reads of its master's slots and ``READWRITE`` takes that back; a command with no
key is served by whichever node receives it; only database 0 exists. And when slots are
unassigned, ``cluster-require-full-coverage`` and ``cluster-allow-reads-when-down`` decide
which ``-CLUSTERDOWN`` a client gets (``test_coverage`` loses a whole shard and checks the
error code; here the slots are unassigned with ``CLUSTER DELSLOTS`` and the texts are
exact).

The error texts compared are those of ``clusterRedirectClient`` (``src/cluster.c``), the
same in Redis 6.2, 7.0 and 8.0 and in Valkey 8.0 and 8.1: ``CLUSTERDOWN Hash slot not
served`` (a key of an unassigned slot, whatever the settings), ``CLUSTERDOWN The cluster is
down``, ``CLUSTERDOWN The cluster is down and only accepts read commands``.

Source: Redis Cluster specification, "Redirection and resharding" ("MOVED Redirection",
"Scaling reads using replica nodes") and "Implemented subset"; the ``READONLY``,
``READWRITE`` and ``SELECT`` pages; ``redis.conf`` comments of
``cluster-require-full-coverage`` and ``cluster-allow-reads-when-down``.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence

import pytest

from harness import Cluster, key_slot
from harness.backends import Node
from harness.plugin.state import HarnessState
from harness.testing import ErrorReply, Reply, raw_commands, wait_for
from harness.topology import parse_info

KEY = "<key>"  # where a command template takes its key
#: one representative command per key-based command family (the key is its first argument)
FAMILIES: tuple[tuple[str, tuple[object, ...]], ...] = (
    ("string", ("INCR", KEY)),
    ("hash", ("HSET", KEY, "field", "value")),
    ("list", ("LPUSH", KEY, "element")),
    ("set", ("SADD", KEY, "member")),
    ("sorted set", ("ZADD", KEY, 1, "member")),
    ("stream", ("XADD", KEY, "*", "field", "value")),
    ("hyperloglog", ("PFADD", KEY, "element")),
    ("bitmap", ("SETBIT", KEY, 7, 1)),
    ("geo", ("GEOADD", KEY, "13.361389", "38.115556", "Palermo")),
    ("generic", ("EXPIRE", KEY, 60)),
)

NOT_SERVED = "CLUSTERDOWN Hash slot not served"
DOWN = "CLUSTERDOWN The cluster is down"
DOWN_READS_ONLY = "CLUSTERDOWN The cluster is down and only accepts read commands"
SELECT_REFUSED = "ERR SELECT is not allowed in cluster mode"
NO_REPLICAS = {"masters": 3, "replicas": 0}
UNASSIGNS = pytest.mark.destructive("unassigns one master's slots (CLUSTER DELSLOTS)")


def _fill(template: tuple[object, ...], key: str) -> tuple[object, ...]:
    return tuple(key if a == KEY else a for a in template)


def _show(r: Reply) -> str:
    return repr(r.text) if isinstance(r, ErrorReply) else f"the value {r!r}"


def _owned(cluster: Cluster, master: Node) -> tuple[tuple[int, int], ...]:
    """The slot ranges ``master`` owns, by its own view."""
    me = cluster.view(master, with_shards=False).myself
    assert me is not None and me.slots, f"{master.addr} owns no slots"
    return me.slots


def _key_in(ranges: Sequence[tuple[int, int]], prefix: str) -> str:
    """The first key ``<prefix><n>`` whose slot lies in ``ranges`` (a few tries for a
    master's share of the slots, where a search for one given slot takes thousands)."""
    for i in itertools.count():
        key = f"{prefix}{i}"
        if any(lo <= key_slot(key) <= hi for lo, hi in ranges):
            return key
    raise AssertionError("unreachable")


def _tagged(ranges: Sequence[tuple[int, int]], prefix: str, *names: str) -> list[str]:
    """Keys sharing one hash tag, all in one slot of ``ranges``."""
    tag = _key_in(ranges, prefix)
    return [f"{{{tag}}}:{n}" for n in names]


# -- routing on a healthy cluster (shared) -------------------------------------------------


@pytest.mark.shares_cluster
def test_every_command_family_is_redirected_to_the_owner(
    cluster: Cluster, rng: random.Random, harness_state: HarnessState
) -> None:
    """MUST: a node routes a command by the hash slot of its key, whatever the command
    does: for one command of each family (string, hash, list, set, sorted set, stream,
    HyperLogLog, bitmap, geo, generic), a master that does not own the key's slot and a
    replica of the owner (no ``READONLY``) both answer exactly ``-MOVED <slot>
    <owner endpoint>:<port>``.

    Redis Cluster specification, "Implemented subset" (all single-key commands are
    available) and "Redirection and resharding" / "MOVED Redirection" (any node may be
    queried, replicas included; the node looks up the slot of the key and redirects).
    """
    owners = cluster.view(cluster.nodes[0], with_shards=False).slot_owners()
    wrong = []
    for family, template in FAMILIES:
        key = f"{harness_state.key_prefix}{family[:3]}:{rng.randrange(1 << 30)}"
        slot = key_slot(key)
        owner_id = owners[slot]
        assert owner_id is not None, f"slot {slot} is unassigned on a healthy cluster"
        owner = cluster.node_by_id(owner_id)
        want = f"MOVED {slot} {owner.public_addr}"
        others = [m for m in cluster.initial_masters if m is not owner]
        replicas = [r for r in cluster.initial_replicas if cluster.initial_master_of(r) is owner]
        cmd = _fill(template, key)
        for node in [rng.choice(others), *replicas[:1]]:
            (got,) = raw_commands(node, cmd)
            if not (isinstance(got, ErrorReply) and got.text == want):
                wrong.append(f"{family} {cmd[0]} on {node.name} {node.addr}: {_show(got)}")
    assert not wrong, "not redirected to the slot's owner:\n" + "\n".join(wrong)


@pytest.mark.shares_cluster
def test_readonly_replica_serves_multi_key_reads_until_readwrite(
    cluster: Cluster, harness_state: HarnessState
) -> None:
    """MUST: a connection in ``READONLY`` mode to a replica is served multi-key reads
    (``MGET``, ``EXISTS``) of keys sharing one hash tag in a slot of its master, without
    redirection; after ``READWRITE`` on the same connection the replica redirects the
    same reads to its master with ``-MOVED <slot> <master>`` again.

    ``READONLY`` page (in readonly mode a replica redirects only commands about keys its
    master does not serve); ``READWRITE`` page (resets the read-only flag of the
    connection); Redis Cluster specification, "Scaling reads using replica nodes".
    """
    replica = cluster.initial_replicas[0]
    master = cluster.initial_master_of(replica)
    a, b = _tagged(_owned(cluster, master), f"{harness_state.key_prefix}ro:", "a", "b")
    slot = key_slot(a)
    stored, acked = raw_commands(master, ("MSET", a, "1", b, "2"), ("WAIT", 1, 2000))
    assert stored == "OK" and isinstance(acked, int) and acked >= 1, (
        f"MSET on {master.addr}: {stored!r}, replicas acknowledging: {acked!r}"
    )
    moved = ErrorReply(f"MOVED {slot} {master.public_addr}")
    got = raw_commands(
        replica,
        ("READONLY",),
        ("MGET", a, b),
        ("EXISTS", a, b),
        ("READWRITE",),
        ("MGET", a, b),
        ("EXISTS", a, b),
    )
    assert got[0] == "OK" and got[3] == "OK", f"READONLY / READWRITE on {replica.addr}: {got}"
    assert got[1] == [b"1", b"2"], f"READONLY {replica.addr} on MGET {a} {b}: {got[1]!r}"
    assert got[2] == 2, f"READONLY {replica.addr} on EXISTS {a} {b}: {got[2]!r}"
    raw_commands(master, ("DEL", a, b))  # on someone else's cluster nothing flushes
    for name, after in (("MGET", got[4]), ("EXISTS", got[5])):
        assert after == moved, (
            f"{replica.addr} after READWRITE on {name}: {_show(after)}, expected {moved.text!r}"
        )


@pytest.mark.shares_cluster
@pytest.mark.whole_keyspace("compares each node's DBSIZE with the keys the test wrote")
def test_keyless_commands_are_served_by_every_node(
    cluster: Cluster, harness_state: HarnessState
) -> None:
    """MUST: a command without a key (``PING``, ``ECHO``, ``INFO``, ``DBSIZE``, ``TIME``)
    has no slot to route by: every node serves it itself, masters and replicas alike
    (a replica without ``READONLY`` too), never ``-MOVED``. ``DBSIZE`` counts that node's
    own keys: master ``i`` holds ``i + 1`` keys here, its replicas the same, once
    replicated.

    Redis Cluster specification, "Redirection and resharding" / "MOVED Redirection" (a
    node looks up the hash slot of the keys a query mentions: redirection is per key) and
    "Overview of Redis Cluster main components" / "Key distribution model" (each master
    holds the keys of its slots).
    """
    want: dict[str, int] = {}
    for i, m in enumerate(cluster.initial_masters):
        names = [str(j) for j in range(i + 1)]
        keys = _tagged(_owned(cluster, m), f"{harness_state.key_prefix}keyless:", *names)
        copies = [r for r in cluster.initial_replicas if cluster.initial_master_of(r) is m]
        pairs = [x for k in keys for x in (k, k)]
        stored, acked = raw_commands(m, ("MSET", *pairs), ("WAIT", len(copies), 2000))
        assert stored == "OK" and acked == len(copies), f"{m.addr}: {stored!r}, WAIT {acked!r}"
        for n in (m, *copies):
            want[n.addr] = i + 1
    seen: dict[str, int] = {}
    for n in cluster.nodes:
        ping, echo, info, dbsize, clock = raw_commands(
            n, ("PING",), ("ECHO", "hello"), ("INFO",), ("DBSIZE",), ("TIME",)
        )
        where = f"{n.name} {n.addr}"
        assert ping == "PONG", f"{where} on PING: {_show(ping)}"
        assert echo == b"hello", f"{where} on ECHO: {_show(echo)}"
        assert isinstance(info, bytes) and b"cluster_enabled:1" in info, (
            f"{where} on INFO: {_show(info)[:200]}"
        )
        assert isinstance(dbsize, int), f"{where} on DBSIZE: {_show(dbsize)}"
        seen[n.addr] = dbsize
        assert isinstance(clock, list) and len(clock) == 2, f"{where} on TIME: {_show(clock)}"
        assert abs(int(clock[0]) - time.time()) < 60, f"{where} on TIME: {clock!r}"  # type: ignore[arg-type]
    assert seen == want, f"DBSIZE per node {seen}, keys written per node {want}"


@pytest.mark.shares_cluster
def test_only_database_zero_can_be_selected(cluster: Cluster) -> None:
    """MUST: a cluster node has database 0 only: ``SELECT 1`` is refused with exactly
    ``-ERR SELECT is not allowed in cluster mode``, on masters and replicas, while
    ``SELECT 0`` is accepted (``+OK``), so clients that always send it keep working.

    Redis Cluster specification, "Implemented subset" (no multiple databases: only
    database 0, ``SELECT`` is not allowed); ``SELECT`` page (Redis Cluster supports only
    database zero).
    """
    nodes = [cluster.initial_masters[0], *cluster.initial_replicas[:1]]
    for n in nodes:
        one, zero = raw_commands(n, ("SELECT", 1), ("SELECT", 0))
        assert one == ErrorReply(SELECT_REFUSED), (
            f"{n.name} {n.addr} on SELECT 1: {_show(one)}, expected {SELECT_REFUSED!r}"
        )
        assert zero == "OK", f"{n.name} {n.addr} on SELECT 0: {_show(zero)}"


# -- unassigned slots (own clusters: the map changes) -------------------------------------


def _uncover(cluster: Cluster) -> tuple[Node, str, dict[Node, str]]:
    """Write one key to each master but the first, then unassign the first master's slots
    on every node (``CLUSTER DELSLOTS``: the owner first, so no node learns them back from
    its gossip) and wait until no node has them. Returns that master, a key of its former
    slots and the other masters' keys."""
    gone, *covered = cluster.initial_masters
    keys = {m: _key_in(_owned(cluster, m), "cover:") for m in covered}
    for m, k in keys.items():
        assert m.call("SET", k, k) == "OK"
    ranges = _owned(cluster, gone)
    slots = [s for lo, hi in ranges for s in range(lo, hi + 1)]
    order = [gone, *(n for n in cluster.nodes if n is not gone)]

    def unassign() -> tuple[bool, dict[str, int]]:
        left = {}
        for n in order:  # DELSLOTS again where a slot is still (or again) assigned
            owners = cluster.view(n, with_shards=False).slot_owners()
            still = [s for s in slots if owners[s] is not None]
            if still:
                n.call("CLUSTER", "DELSLOTS", *still)
                left[n.addr] = len(still)
        return not left, left

    wait_for(unassign, cluster.recovery_s(), f"{len(slots)} slots unassigned on every node", 0.1)
    cluster.record("delslots", gone.addr, f"{len(slots)} slots unassigned on every node")
    return gone, _key_in(ranges, "cover:"), keys


def _wait_state(cluster: Cluster, want: str, rule: str) -> None:
    """Every node's ``cluster_state`` is ``want`` within a node timeout (a node updates it
    right after ``DELSLOTS``, at the latest on its next cron tick)."""

    def probe() -> tuple[bool, dict[str, str]]:
        seen = {
            n.addr: parse_info(str(n.call("CLUSTER", "INFO"))).get("cluster_state", "?")
            for n in cluster.nodes
        }
        return all(v == want for v in seen.values()), seen

    wait_for(probe, cluster.spec.node_timeout_ms / 1000, f"{rule}: cluster_state:{want}")


def _check_not_served(cluster: Cluster, key: str) -> None:
    """Every node answers a read and a write of ``key``, of an unassigned slot, with
    exactly ``CLUSTERDOWN Hash slot not served``: no node may serve or redirect it."""
    slot = key_slot(key)
    for n in cluster.nodes:
        for cmd in (("GET", key), ("SET", key, "v")):
            (got,) = raw_commands(n, cmd)
            assert got == ErrorReply(NOT_SERVED), (
                f"MUST: a key of an unassigned slot is not served: {n.name} {n.addr} on "
                f"{cmd[0]} {key} (slot {slot}): {_show(got)}, expected {NOT_SERVED!r}"
            )


@UNASSIGNS
@pytest.mark.cluster(**NO_REPLICAS)
def test_full_coverage_refuses_every_key_while_slots_are_unassigned(cluster: Cluster) -> None:
    """MUST: with ``cluster-require-full-coverage yes`` (the default, not set here), once
    some hash slots are unassigned every node turns ``cluster_state:fail`` and stops
    accepting queries: keys of the unassigned slots get ``-CLUSTERDOWN Hash slot not
    served``, and reads and writes of the slots still covered, on their own masters, get
    ``-CLUSTERDOWN The cluster is down`` (``cluster-allow-reads-when-down`` is left at its
    default, ``no``).

    ``redis.conf`` comment of ``cluster-require-full-coverage`` (by default nodes stop
    accepting queries if they detect at least one uncovered hash slot; the whole cluster
    becomes unavailable); ``cluster-allow-reads-when-down`` (default ``no``).
    """
    _gone, lost, keys = _uncover(cluster)
    rule = "MUST (cluster-require-full-coverage yes): a slot uncovered stops the cluster"
    _wait_state(cluster, "fail", rule)
    _check_not_served(cluster, lost)
    for m, k in keys.items():
        for cmd in (("GET", k), ("SET", k, "v")):
            (got,) = raw_commands(m, cmd)
            assert got == ErrorReply(DOWN), (
                f"{rule}, reads and writes of covered slots included "
                f"(cluster-allow-reads-when-down no): {m.name} {m.addr}, owner of {k}, "
                f"on {cmd[0]}: {_show(got)}, expected {DOWN!r}"
            )


@UNASSIGNS
@pytest.mark.cluster(**NO_REPLICAS, server_args={"cluster-require-full-coverage": "no"})
def test_partial_coverage_serves_the_covered_slots(cluster: Cluster) -> None:
    """MUST: with ``cluster-require-full-coverage no`` a cluster with some slots
    unassigned stays ``cluster_state:ok``: the masters of the covered slots serve their
    reads and writes, the other nodes redirect them there with ``-MOVED``, and keys of the
    unassigned slots get ``-CLUSTERDOWN Hash slot not served`` from every node.

    ``redis.conf`` comment of ``cluster-require-full-coverage`` (set to ``no``, the part of
    the cluster still working keeps accepting queries for the key space it covers).
    """
    gone, lost, keys = _uncover(cluster)
    rule = "MUST (cluster-require-full-coverage no): the covered slots stay served"
    _wait_state(cluster, "ok", rule)
    _check_not_served(cluster, lost)
    for m, k in keys.items():
        got, put, again = raw_commands(m, ("GET", k), ("SET", k, "new"), ("GET", k))
        assert (got, put, again) == (k.encode(), "OK", b"new"), (
            f"{rule}: {m.name} {m.addr}, owner of {k}, on GET / SET / GET: "
            f"{_show(got)}, {_show(put)}, {_show(again)}"
        )
        (moved,) = raw_commands(gone, ("GET", k))
        want = f"MOVED {key_slot(k)} {m.public_addr}"
        assert moved == ErrorReply(want), (
            f"{rule}: {gone.addr} (its slots unassigned) on GET {k}: {_show(moved)}, "
            f"expected {want!r}"
        )


@UNASSIGNS
@pytest.mark.cluster(**NO_REPLICAS, server_args={"cluster-allow-reads-when-down": "yes"})
def test_reads_when_down_serves_reads_but_not_writes(cluster: Cluster) -> None:
    """MUST: with ``cluster-allow-reads-when-down yes`` a cluster down for unassigned
    slots (``cluster-require-full-coverage yes``) still serves reads of the slots each
    master owns, refuses writes with exactly ``-CLUSTERDOWN The cluster is down and only
    accepts read commands``, and answers ``-CLUSTERDOWN Hash slot not served`` for keys of
    the unassigned slots (no node believes it owns them).

    ``redis.conf`` comment of ``cluster-allow-reads-when-down`` (nodes serve read traffic
    while the cluster is down, as long as they believe they own the slots; writes stay
    refused).
    """
    _gone, lost, keys = _uncover(cluster)
    rule = "MUST (cluster-allow-reads-when-down yes): reads served, writes refused while down"
    _wait_state(cluster, "fail", rule)
    _check_not_served(cluster, lost)
    for m, k in keys.items():
        got, put = raw_commands(m, ("GET", k), ("SET", k, "v"))
        assert got == k.encode(), f"{rule}: {m.name} {m.addr} on GET {k}: {_show(got)}"
        assert put == ErrorReply(DOWN_READS_ONLY), (
            f"{rule}: {m.name} {m.addr} on SET {k}: {_show(put)}, expected {DOWN_READS_ONLY!r}"
        )
