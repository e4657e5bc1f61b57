"""Regression: two masters in one shard after two chained failovers, with replica
migration turned off.

valkey-io/valkey#2261 (open; fixes proposed in valkey-io/valkey#2279 and #2586, neither
merged). The recipe as the report gives it, with ``cluster-allow-replica-migration no``
and a shard of primary A and replica B: A goes down and B takes over; while A is still
down a new node C is added as B's replica; B goes down and C takes over; A and B come
back. A restarts from a nodes.conf that has never heard of C, learns of C through gossip
first and gives it a random shard id; C's claim on A's slots (C's own ping, or an UPDATE
from a node that knows better) then reads as a migration to another shard, and with
replica migration off A stays a primary, "an empty primary"; the shard-id ping
extension processed after it puts C in A's shard. Two primaries in one shard, and A
never becomes a replica again.

Checked against the source: valkey ``src/cluster_legacy.c`` (8.0.1)
``clusterUpdateSlotsConfigWith`` follows the sender after losing the last slot only if
``server.cluster_allow_replica_migration || are_in_same_shard``, and otherwise logs "My
last slot was migrated to node ... I am now an empty primary."; unknown nodes named in
gossip get a fresh random shard id (``clusterProcessGossipSection`` ->
``createClusterNode``); ``clusterProcessPacket`` handles the slot claim before
``clusterProcessPingExtensions``, which carries the shard id. The shard-id condition came
with valkey-io/valkey#445 (8.0.0; the 8.1.8 binary logs the same line). Valkey 7.2 and
Redis (6.2, 7.0, unstable of 2024-10) instead follow the sender when it took exactly our slots
(``sender_slots == migrated_our_slots``), which holds here, so they are not affected.
Valkey's own test of the state (tests/unit/cluster/manual-failover.tcl, the #2431 case,
disabled there) builds it with DEBUG packet filters.

Carried out as the report gives it: "goes down" is SIGKILL, "comes back" is a restart from the
node's own files, C joins through :func:`harness.ops.add_replica` (MEET, REPLICATE, first
sync, every node agreeing), and each failover is complete when the cluster is healthy
again with the heir owning the shard's slots. One choice the report leaves open: B is
restarted only once A has learned that C owns the slots. Restarted together, A may hear
B's claim first (B is in A's nodes.conf, in A's shard), follow B, and reach C through
the sub-replica safeguard: 1 of 3 runs on Valkey 8.0 went that way here, and in it B
then flagged itself master after a packet from A, a different path to the same
observable. Observable: A and B not both synced replicas of C within ``recovery_s()``;
the evidence is the stray master's own CLUSTER NODES row, the CLUSTER SHARDS entry
listing two masters (where the server has it) and the "empty primary" log line.
"""

from __future__ import annotations

import pytest

from harness import Cluster
from harness.backends import Node
from harness.errors import NotReadyError
from harness.ops import add_replica
from harness.regressions import Bug, Regression
from harness.topology import NodeEntry
from harness.wait import wait_for

BUG = Bug(
    name="two-masters-after-chained-failovers",
    reference="valkey-io/valkey#2261",
    title="with replica migration off, an old primary back after two chained failovers "
    "stays an empty primary in the new primary's shard",
    affected="Valkey 8.0+ (open; the shard-id condition is from valkey-io/valkey#445); "
    "not Valkey 7.2, not Redis",
    fixed="",
    observable="a restarted old master never rejoins as a replica: two masters in one shard",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.destructive("kills two masters in turn and restarts them"),
]

NO_MIGRATION = {"cluster-allow-replica-migration": "no"}


def _myself(cluster: Cluster, node: Node) -> NodeEntry:
    me = cluster.view(node, with_shards=False).myself
    assert me is not None, f"{node.addr} lists no myself row"
    return me


def _take_over(cluster: Cluster, dead: Node, heir: Node, slot: int) -> None:
    """Kill ``dead``; wait until ``heir`` owns ``slot`` as it sees it and the live nodes
    pass every topology check again (the failover is over everywhere)."""
    cluster.faults.kill(dead)
    wait_for(lambda: _owns(cluster, heir, slot), cluster.recovery_s(), f"{heir.addr} owning {slot}")
    wait_for(cluster.probe_healthy, cluster.recovery_s(), f"healthy after {dead.addr} died")


def _owns(cluster: Cluster, node: Node, slot: int) -> tuple[bool, str]:
    me = _myself(cluster, node)
    mine = me.is_master and any(lo <= slot <= hi for lo, hi in me.slots)
    return mine, f"{node.addr}: flags={sorted(me.flags)} slots={list(me.slots)[:3]}"


def _owner_seen(cluster: Cluster, observer: Node, owner: Node, slot: int) -> tuple[bool, str]:
    seen = cluster.view(observer, with_shards=False).slot_owners()[slot]
    return seen == owner.node_id, f"{observer.addr} gives slot {slot} to {seen}"


def _rejoined(cluster: Cluster, nodes: list[Node], master: Node) -> tuple[bool, str]:
    seen = [cluster.probe_replica_of(n, master) for n in nodes]
    return all(ok for ok, _ in seen), "; ".join(s for _, s in seen)


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000, server_args=NO_MIGRATION)
def test_two_masters_after_chained_failovers(cluster: Cluster, regression: Regression) -> None:
    """Restarted after the shard's slots passed A -> B -> C, A and B MUST come back as
    replicas of C, the owner with the greatest config epoch (specification, "How nodes
    rejoin the cluster": a master whose slots were all taken becomes a replica of the
    taker; "Replica migration" is a different mechanism, and turning it off must not
    leave a shard with two masters)."""
    a = cluster.initial_masters[0]
    b = cluster.replicas_of(a)[0]
    slot = cluster.first_slot(a)
    with regression.setup(f"kill A {a.addr}; its replica B {b.addr} takes over"):
        _take_over(cluster, a, b, slot)
    with regression.setup(f"add C as B's replica; kill B {b.addr}; C takes over"):
        c = add_replica(cluster, b)
        _take_over(cluster, b, c, slot)
    with regression.setup("restart A; once it has learned that C owns the slots, restart B"):
        cluster.faults.start(a)
        wait_for(lambda: _owner_seen(cluster, a, c, slot), cluster.recovery_s(), "A learning of C")
        cluster.faults.start(b)
    bound = cluster.recovery_s()
    try:
        wait_for(
            lambda: _rejoined(cluster, [a, b], c),
            bound,
            f"A {a.addr} and B {b.addr} synced replicas of C {c.addr}",
        )
    except NotReadyError as exc:
        late = str(exc)
    else:
        regression.not_reproduced(
            f"A {a.addr} and B {b.addr} both synced replicas of C {c.addr} (the owner of slot "
            f"{slot}) within {bound:.0f} s of their restart"
        )
        return
    _judge(cluster, regression, (a, b), c, slot, bound, late)


def _judge(
    cluster: Cluster,
    regression: Regression,
    back: tuple[Node, Node],
    c: Node,
    slot: int,
    bound: float,
    late: str,
) -> None:
    """After the bound: which of the restarted nodes still says it is a master?"""
    rows = {n: _myself(cluster, n) for n in back}
    stray = [n for n, me in rows.items() if me.is_master]
    if not stray:
        regression.inconclusive(f"both replicas again, but not synced with C: {late}")
    for n in stray:
        regression.evidence(f"{n.name} {n.addr} own row: {_row(n, n.node_id or '')}")
        regression.evidence(f"C as {n.name} sees it: {_row(n, c.node_id or '')}")
    masters, shard = _masters_in_shard(cluster, stray[0], c)
    if shard:
        regression.evidence(f"CLUSTER SHARDS on {stray[0].addr}: {shard}")
    lines = regression.log_lines(cluster, r"empty primary|Reconfiguring myself")
    for line in lines[-4:]:
        regression.evidence(line)
    first = stray[0]
    role = cluster.replication_info(first).get("role")
    owned = f"owning {rows[first].slot_count} slots" if rows[first].slots else "with no slots"
    regression.reproduced(
        f"{first.name} {first.addr} still a master {owned} {bound:.0f} s after its restart, "
        f"while C {c.addr} owns slot {slot}" + (f"; {shard}" if masters > 1 else ""),
        stray=[n.name for n in stray],
        stray_slots=rows[first].slot_count,
        masters_in_shard=masters,
        stray_role=role,  # INFO replication: "master", or "slave" under a master flag
        empty_primary_logged=any(
            ln.startswith(f"{first.name}:") and "empty primary" in ln for ln in lines
        ),
    )


def _row(observer: Node, node_id: str) -> str:
    for line in str(observer.call("CLUSTER", "NODES")).splitlines():
        if line.startswith(node_id):
            return line.strip()
    return f"{node_id[:8]} not listed"


def _masters_in_shard(cluster: Cluster, observer: Node, c: Node) -> tuple[int, str]:
    """How many masters the shard of ``c`` lists as ``observer`` reports it (CLUSTER
    SHARDS), and a line saying which; ``(0, "")`` where the server has no CLUSTER SHARDS."""
    shards = cluster.view(observer).shards
    if shards is None:
        return 0, ""
    for shard in shards:
        if any(m.node_id == c.node_id for m in shard.nodes):
            masters = [f"{m.endpoint}:{m.port}" for m in shard.nodes if m.role == "master"]
            listed = ", ".join(masters)
            return len(masters), f"the shard of C lists {len(masters)} masters: {listed}"
    return 0, f"no shard lists C {c.addr}"
