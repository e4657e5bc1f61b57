"""Conformance: what the ``CLUSTER`` inspection commands reply, asked of every node.
Clients build their map from ``CLUSTER SLOTS`` / ``CLUSTER SHARDS``, operators read
``CLUSTER NODES`` and ``CLUSTER INFO``: each must have its documented shape, and the three
topology views must describe one cluster, with each node at the address it answers on.
(``test_topology.py`` judges the map itself: coverage, agreement between nodes, epochs;
``test_keyslot.py`` the hash function on one node.)

Source: Redis Cluster specification, "Key distribution model", "Hash tags", "Cluster
topology" and "Failure detection"; the ``CLUSTER SLOTS``, ``CLUSTER SHARDS``, ``CLUSTER
NODES``, ``CLUSTER LINKS``, ``CLUSTER MYID``, ``CLUSTER MYSHARDID``, ``CLUSTER
COUNT-FAILURE-REPORTS``, ``CLUSTER COUNTKEYSINSLOT``, ``CLUSTER GETKEYSINSLOT``, ``CLUSTER
KEYSLOT`` and ``CLUSTER INFO`` pages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import pytest
import redis

from harness import Cluster, key_for_slot, key_slot, slotmap
from harness.backends import Node
from harness.crc16 import SLOTS, crc16
from harness.testing import expect_error, wait_for
from harness.topology import NodeEntry, NodeView, parse_cluster_nodes, parse_cluster_shards

# these tests only read, or write keys (flushed between tests): they share a cluster
pytestmark = pytest.mark.shares_cluster

NODE_ID = re.compile(r"[0-9a-f]{40}")
RULE_VIEWS = "CLUSTER SLOTS, CLUSTER SHARDS and CLUSTER NODES must describe the same cluster"


@dataclass(frozen=True)
class SlotsNode:
    """One node of a ``CLUSTER SLOTS`` entry: preferred endpoint, port, id."""

    endpoint: str | None  # NULL: "the endpoint the client used to send the command"
    port: int
    node_id: str


@dataclass(frozen=True)
class SlotsRange:
    """One entry: a slot range, its master and its replicas."""

    lo: int
    hi: int
    master: SlotsNode
    replicas: tuple[SlotsNode, ...]


def parse_slots(reply: object, where: str) -> list[SlotsRange]:
    """``CLUSTER SLOTS`` as its page documents it (``[start, end, master, replica...]``,
    each node ``[endpoint, port, id]`` plus, since 7.0, a map of more networking
    metadata); an ``AssertionError`` naming the entry that is not."""
    assert isinstance(reply, list), f"{where}: CLUSTER SLOTS replied {reply!r}, not an array"
    out = []
    for entry in reply:
        assert isinstance(entry, list) and len(entry) >= 3, (
            f"{where}: CLUSTER SLOTS entry {entry!r} is not [start, end, master, replicas...]"
        )
        lo, hi, *nodes = entry
        assert isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi < SLOTS, (
            f"{where}: CLUSTER SLOTS range {lo!r}-{hi!r} is not two slots in order"
        )
        parsed = [_slots_node(n, f"{where}: CLUSTER SLOTS {lo}-{hi}") for n in nodes]
        out.append(SlotsRange(lo, hi, parsed[0], tuple(parsed[1:])))
    return out


def _slots_node(item: object, where: str) -> SlotsNode:
    assert isinstance(item, list) and len(item) in (3, 4), (
        f"{where}: node {item!r} is not [endpoint, port, id(, metadata)]"
    )
    endpoint, port, node_id = item[:3]
    assert endpoint is None or isinstance(endpoint, str), f"{where}: endpoint {endpoint!r}"
    assert isinstance(port, int) and 0 < port < 65536, f"{where}: port {port!r}"
    assert isinstance(node_id, str) and NODE_ID.fullmatch(node_id), f"{where}: id {node_id!r}"
    if len(item) == 4:  # values: strings (ip, hostname)
        meta = _map(item[3], f"{where}: metadata")
        assert all(isinstance(v, str) for v in meta.values()), f"{where}: metadata {meta}"
    return SlotsNode(endpoint, port, node_id)


def _map(value: object, where: str) -> dict[str, object]:
    """A map reply: a dict in RESP3, ``[key, value, ...]`` in RESP2."""
    if isinstance(value, list) and len(value) % 2 == 0:
        value = dict(zip(value[::2], value[1::2], strict=True))
    assert isinstance(value, dict) and all(isinstance(k, str) for k in value), (
        f"{where}: {value!r} is not a map"
    )
    return value


def _replies(node: Node, *cmds: Sequence[object]) -> list[object]:
    """The replies of ``cmds`` on one connection to ``node``, in one round trip."""
    with node.client(timeout=2.0) as c:
        pipe = c.pipeline(transaction=False)
        for cmd in cmds:
            pipe.execute_command(*cmd)
        return list(pipe.execute())


def _view(cluster: Cluster, node: Node) -> tuple[list[SlotsRange], NodeView]:
    """``CLUSTER SLOTS`` and ``NODES`` (and ``SHARDS`` where it exists) asked at once."""
    shards_too = cluster.impl.has("cluster_shards")
    cmds: list[tuple[str, ...]] = [("CLUSTER", "SLOTS"), ("CLUSTER", "NODES")]
    got = _replies(node, *cmds, *([("CLUSTER", "SHARDS")] if shards_too else []))
    shards = tuple(parse_cluster_shards(got[2])) if shards_too else None  # type: ignore[arg-type]
    view = NodeView(node.addr, tuple(parse_cluster_nodes(str(got[1]))), shards=shards)
    return parse_slots(got[0], f"{node.name} {node.addr}"), view


def _replicas(view: NodeView, master_id: str) -> set[str]:
    return {e.node_id for e in view.nodes if e.master_id == master_id and not e.failed}


def test_slots_reply_has_the_documented_shape(cluster: Cluster) -> None:
    """MUST: every node answers ``CLUSTER SLOTS`` with one entry per slot range, each
    ``[start, end, master, replicas...]``, a node being ``[endpoint, port, node id]`` (and,
    since 7.0, a map of further networking metadata); the ranges list each of the 16384
    slots exactly once, and no node twice in one entry.

    The ``CLUSTER SLOTS`` page (the nested result; "The networking information for each
    node"; the metadata map since 7.0.0).
    """
    for n in cluster.nodes:
        ranges = parse_slots(n.call("CLUSTER", "SLOTS"), f"{n.name} {n.addr}")
        spans = [(r.lo, r.hi) for r in ranges]
        assert slotmap.count(spans) == SLOTS and slotmap.merge(spans) == [(0, SLOTS - 1)], (
            f"{n.addr}: CLUSTER SLOTS ranges {sorted(spans)} do not list each slot once"
        )
        for r in ranges:
            ids = [r.master.node_id, *(x.node_id for x in r.replicas)]
            assert len(set(ids)) == len(ids), f"{n.addr}: {r.lo}-{r.hi} lists a node twice"


def _every_replica_listed(cluster: Cluster) -> tuple[bool, str]:
    """Does every node's ``CLUSTER SLOTS`` list the replicas its ``CLUSTER NODES`` lists?
    (A replica whose offset a node has not heard yet is left out: redis/redis#9287.)"""
    missing = []
    for n in cluster.nodes:
        ranges, view = _view(cluster, n)
        for r in ranges:
            absent = _replicas(view, r.master.node_id) - {x.node_id for x in r.replicas}
            missing += [f"{n.addr}: {r.lo}-{r.hi} lacks {i[:8]}" for i in sorted(absent)]
    return not missing, "; ".join(missing)


def test_slots_shards_and_nodes_agree(cluster: Cluster) -> None:
    """MUST: on every node the three topology views describe one cluster: ``CLUSTER
    SLOTS`` gives each range the master ``CLUSTER NODES`` gives it and that master's
    replicas; ``CLUSTER SHARDS`` groups each master with those replicas, with the roles
    ``CLUSTER NODES`` shows; and all three name each node by the address it answers on
    (with the default ``cluster-preferred-endpoint-type ip``, the address ``MOVED`` names;
    a NULL endpoint means the one the client asked), since clients go where ``CLUSTER
    SLOTS`` / ``CLUSTER SHARDS`` send them.

    The ``CLUSTER SLOTS`` page ("The preferred endpoint, along with the port, defines the
    location that clients should use to send requests for a given slot"), the ``CLUSTER
    SHARDS`` and ``CLUSTER NODES`` pages; Redis Cluster specification, "Clients first
    connection and handling of redirections".
    """
    wait_for(lambda: _every_replica_listed(cluster), 10, "every replica in CLUSTER SLOTS")
    problems: list[str] = []
    for n in cluster.nodes:
        ranges, view = _view(cluster, n)
        problems += _disagreements(cluster, n, ranges, view)
    more = f"\n  (+{len(problems) - 8} more)" if len(problems) > 8 else ""
    assert not problems, f"{RULE_VIEWS}:\n  " + "\n  ".join(problems[:8]) + more


def _disagreements(
    cluster: Cluster, n: Node, ranges: list[SlotsRange], view: NodeView
) -> list[str]:
    where = f"{n.name} {n.addr}"
    out = []
    owners = slotmap.owner_ranges([(r.lo, r.hi, r.master.node_id) for r in ranges])
    for lo, hi, in_slots, in_nodes in slotmap.differences(owners, view.owner_ranges)[:3]:
        out.append(f"{where}: slots {lo}-{hi} owned by {in_slots} in SLOTS, {in_nodes} in NODES")
    by_id = view.by_id()
    for r in ranges:
        listed = {x.node_id for x in r.replicas}
        if listed != _replicas(view, r.master.node_id):
            out.append(f"{where}: SLOTS {r.lo}-{r.hi} replicas {sorted(listed)} differ from NODES")
        for x in (r.master, *r.replicas):
            host = n.host if x.endpoint is None else x.endpoint  # NULL: the address asked
            out += _address(cluster, where, "SLOTS", x.node_id, f"{host}:{x.port}", by_id)
    for shard in view.shards or ():
        ids = {sn.node_id for sn in shard.nodes}
        master = shard.master
        if master is not None and ids != {master.node_id} | _replicas(view, master.node_id):
            out.append(f"{where}: SHARDS groups {sorted(ids)}, NODES does not")
        for sn in shard.nodes:
            entry = by_id.get(sn.node_id)
            if entry is not None and (sn.role in ("master", "primary")) != entry.is_master:
                out.append(f"{where}: SHARDS role of {sn.node_id[:8]} is {sn.role}, NODES differs")
            out += _address(cluster, where, "SHARDS", sn.node_id, f"{sn.endpoint}:{sn.port}", by_id)
    return out


def _address(
    cluster: Cluster, where: str, source: str, node_id: str, addr: str, by_id: dict[str, NodeEntry]
) -> list[str]:
    entry = by_id.get(node_id)
    if entry is None:
        return [f"{where}: {source} names {node_id[:8]}, which NODES does not list"]
    actual = cluster.node_by_id(node_id).public_addr
    if addr == entry.addr == actual:
        return []
    return [
        f"{where}: {source} names {node_id[:8]} at {addr}, NODES at {entry.addr}; "
        f"the node answers at {actual}"
    ]


@pytest.mark.requires("cluster_shards")  # CLUSTER LINKS came with CLUSTER SHARDS, in 7.0
def test_links_pair_every_peer(cluster: Cluster) -> None:
    """MUST: every node keeps one outbound (``to``) and one inbound (``from``) link with
    each peer it knows, and ``CLUSTER LINKS`` lists exactly those, each a map of
    ``direction``, ``node``, ``create-time``, ``events``, ``send-buffer-allocated`` and
    ``send-buffer-used``.

    The ``CLUSTER LINKS`` page.
    """
    numbers = {"create-time", "send-buffer-allocated", "send-buffer-used"}
    keys = {"direction", "node", "events", *numbers}

    def links(n: Node) -> tuple[bool, str]:
        links_reply, nodes_reply = _replies(n, ("CLUSTER", "LINKS"), ("CLUSTER", "NODES"))
        assert isinstance(links_reply, list), f"{n.addr}: CLUSTER LINKS replied {links_reply!r}"
        peers = {e.node_id for e in parse_cluster_nodes(str(nodes_reply)) if not e.is_myself}
        seen = []
        for item in links_reply:
            link = _map(item, f"{n.addr}: CLUSTER LINKS entry")
            assert set(link) >= keys and link["direction"] in ("to", "from"), f"{n.addr}: {link}"
            assert all(isinstance(link[k], int) for k in numbers), f"{n.addr}: {link}"
            seen.append((link["node"], link["direction"]))
        want = sorted((p, d) for p in peers for d in ("to", "from"))
        return sorted(seen) == want, f"{n.addr} lists links {sorted(seen)}, wants {want}"

    for n in cluster.nodes:  # a link being re-established is briefly missing
        wait_for(partial(links, n), cluster.spec.node_timeout_ms / 1000, f"{n.addr} links")


def test_myid_is_the_myself_line(cluster: Cluster) -> None:
    """MUST: ``CLUSTER MYID`` returns the node's own 40-character id, the one its
    ``CLUSTER NODES`` reply flags ``myself``.

    The ``CLUSTER MYID`` and ``CLUSTER NODES`` pages.
    """
    for n in cluster.nodes:
        myid, nodes = _replies(n, ("CLUSTER", "MYID"), ("CLUSTER", "NODES"))
        me = [e.node_id for e in parse_cluster_nodes(str(nodes)) if e.is_myself]
        assert NODE_ID.fullmatch(str(myid)) and me == [myid] == [n.node_id], (
            f"{n.addr}: CLUSTER MYID {myid!r}, myself lines {me}, known as {n.node_id}"
        )


@pytest.mark.requires("cluster_shards")
def test_myshardid_names_the_shard(cluster: Cluster) -> None:
    """MUST (servers with ``CLUSTER MYSHARDID``: Redis 7.2+, Valkey): the reply is the
    id of the node's shard, so a master and its replicas, the members ``CLUSTER SHARDS``
    groups together, share one id and other shards have others.

    The ``CLUSTER MYSHARDID`` and ``CLUSTER SHARDS`` pages.
    """
    try:
        ids = {str(n.node_id): str(n.call("CLUSTER", "MYSHARDID")) for n in cluster.nodes}
    except redis.exceptions.ResponseError as exc:
        if "unknown subcommand" not in str(exc).lower():
            raise
        pytest.skip(f"{cluster.impl.describe()} has no CLUSTER MYSHARDID: {exc}")
    bad = {i: s for i, s in ids.items() if not NODE_ID.fullmatch(s)}
    assert not bad, f"CLUSTER MYSHARDID replies are not 40-character ids: {bad}"
    by_id = sorted(sorted(i for i in ids if ids[i] == s) for s in set(ids.values()))
    shards = parse_cluster_shards(cluster.nodes[0].call("CLUSTER", "SHARDS"))  # type: ignore[arg-type]
    grouped = sorted(sorted(sn.node_id for sn in s.nodes) for s in shards)
    assert by_id == grouped, f"CLUSTER MYSHARDID groups {by_id}, CLUSTER SHARDS {grouped}"


def test_no_failure_reports_about_healthy_peers(cluster: Cluster) -> None:
    """MUST: in a healthy cluster no node holds failure reports about a peer, so
    ``CLUSTER COUNT-FAILURE-REPORTS <id>`` is 0 for each (a report of a brief hiccup
    expires after twice the node timeout); a node id it does not know is an error.

    The ``CLUSTER COUNT-FAILURE-REPORTS`` page; Redis Cluster specification, "Failure
    detection" (reports are valid for ``NODE_TIMEOUT * 2``).
    """

    def reports() -> tuple[bool, str]:
        seen: dict[str, object] = {}
        for n in cluster.nodes:
            peers = [p for p in cluster.nodes if p is not n]
            got = _replies(n, *[("CLUSTER", "COUNT-FAILURE-REPORTS", p.node_id) for p in peers])
            seen |= {f"{n.name} about {p.name}": c for p, c in zip(peers, got, strict=True) if c}
        return not seen, f"failure reports: {seen}"

    wait_for(reports, 2 * cluster.spec.node_timeout_ms / 1000 + 1, "no failure reports")
    node, unknown = cluster.nodes[0], "0" * 40
    got = expect_error(node, "CLUSTER", "COUNT-FAILURE-REPORTS", unknown, code="ERR")
    assert got == f"ERR Unknown node {unknown}", got


@pytest.mark.whole_keyspace("counts every key of a slot")
def test_slot_keys_are_counted_and_listed_where_they_live(cluster: Cluster) -> None:
    """MUST: after known keys are written into one slot, its owner counts exactly them
    (``CLUSTER COUNTKEYSINSLOT``) and lists exactly them (``CLUSTER GETKEYSINSLOT``, all
    when ``count`` is larger, ``count`` of them when smaller); its replica, once the writes
    replicated, holds the same keys; another master holds none; a slot outside 0..16383 is
    an error.

    The ``CLUSTER COUNTKEYSINSLOT`` and ``CLUSTER GETKEYSINSLOT`` pages (both report on the
    node's own keys); Redis Cluster specification, "Hash tags".
    """
    owner = cluster.initial_masters[1]
    slot = cluster.first_slot(owner)
    tag = key_for_slot(slot, prefix="countkeys:")
    keys = sorted(f"{{{tag}}}:{i}" for i in range(12))
    for k in keys:
        assert owner.call("SET", k, "v") == "OK"
    replicas = cluster.replicas_of(owner)
    assert owner.call("WAIT", len(replicas), 2000) == len(replicas)
    other = next(m for m in cluster.initial_masters if m is not owner)
    for n, want in [(owner, keys), *[(r, keys) for r in replicas], (other, [])]:
        count, listed, some = _replies(
            n,
            ("CLUSTER", "COUNTKEYSINSLOT", slot),
            ("CLUSTER", "GETKEYSINSLOT", slot, 100),
            ("CLUSTER", "GETKEYSINSLOT", slot, 5),
        )
        where = f"{n.name} {n.addr} ({'the owner' if n is owner else 'holding ' + str(len(want))})"
        assert count == len(want), f"{where}: COUNTKEYSINSLOT {slot} = {count}"
        assert isinstance(listed, list) and sorted(listed) == want, (
            f"{where}: GETKEYSINSLOT {slot} 100 = {listed}"
        )
        assert isinstance(some, list) and len(set(some)) == min(5, len(want)), some
        assert set(some) <= set(want), f"{where}: GETKEYSINSLOT {slot} 5 = {some}"
    for cmd, error in [
        (("COUNTKEYSINSLOT", SLOTS), "ERR Invalid slot"),
        (("GETKEYSINSLOT", SLOTS, 1), "ERR Invalid slot or number of keys"),
    ]:
        got = expect_error(owner, "CLUSTER", *cmd, code="ERR")
        assert got == error, f"CLUSTER {cmd[0]} {SLOTS}: {got}"


def test_keyslot_is_the_same_on_every_node(cluster: Cluster) -> None:
    """MUST: every node, master or replica, maps a key to the slot the specification
    defines: ``123456789`` (the CRC-16/XMODEM check string) to 12739; keys sharing a
    non-empty hash tag (``{user1000}.following``, ``{user1000}.followers``) to the slot of
    the tag; and an empty tag ``{}`` is no tag, so the whole key is hashed.

    Redis Cluster specification, "Key distribution model" and "Hash tags"; the
    ``CLUSTER KEYSLOT`` page.
    """
    want = {
        "123456789": 12739,
        "{user1000}.following": key_slot("user1000"),
        "{user1000}.followers": key_slot("user1000"),
        "{}": crc16(b"{}") % SLOTS,
        "foo{}{bar}": crc16(b"foo{}{bar}") % SLOTS,
        "{}{user1000}": crc16(b"{}{user1000}") % SLOTS,
        "foo{bar}{zap}": key_slot("bar"),
    }
    for n in cluster.nodes:
        got = _replies(n, *[("CLUSTER", "KEYSLOT", k) for k in want])
        wrong = {k: (g, w) for (k, w), g in zip(want.items(), got, strict=True) if g != w}
        assert not wrong, f"{n.name} {n.addr}: KEYSLOT (server, specification): {wrong}"


def test_cluster_info_of_a_healthy_cluster(cluster: Cluster) -> None:
    """MUST, on every node of a healthy cluster: ``cluster_state:ok``, all 16384 slots
    assigned and ok, none ``pfail`` or ``fail``, ``cluster_known_nodes`` = the nodes of
    the cluster, ``cluster_size`` = the masters serving slots, ``cluster_my_epoch`` = the
    config epoch of its own ``CLUSTER NODES`` line and not above ``cluster_current_epoch``;
    and, once settled, one current epoch on every node (the greatest, spread by gossip).

    The ``CLUSTER INFO`` page; Redis Cluster specification, "Cluster current epoch".
    """
    spec = cluster.spec
    fixed = {
        "cluster_state": "ok",
        "cluster_slots_assigned": str(SLOTS),
        "cluster_slots_ok": str(SLOTS),
        "cluster_slots_pfail": "0",
        "cluster_slots_fail": "0",
        "cluster_known_nodes": str(len(cluster.nodes)),
        "cluster_size": str(spec.masters),
    }

    def epochs() -> tuple[bool, dict[str, str]]:
        seen = {}
        for n in cluster.nodes:
            info, nodes = _replies(n, ("CLUSTER", "INFO"), ("CLUSTER", "NODES"))
            fields = dict(line.split(":", 1) for line in str(info).split() if ":" in line)
            wrong = {k: fields.get(k) for k, v in fixed.items() if fields.get(k) != v}
            assert not wrong, f"{n.addr}: CLUSTER INFO {wrong}, expected {fixed}"
            me = next(e for e in parse_cluster_nodes(str(nodes)) if e.is_myself)
            my, current = int(fields["cluster_my_epoch"]), int(fields["cluster_current_epoch"])
            assert my == me.config_epoch, (
                f"{n.addr}: cluster_my_epoch {my}, NODES {me.config_epoch}"
            )
            assert current >= my, f"{n.addr}: cluster_current_epoch {current} < my epoch {my}"
            seen[n.addr] = fields["cluster_current_epoch"]
        return len(set(seen.values())) == 1, seen

    wait_for(epochs, spec.node_timeout_ms / 1000 + 2, "one cluster_current_epoch on every node")
