"""Changing who is in the cluster: adding a master or a replica, forgetting and removing
a node, and watching a replica migrate to an orphaned master.

- A node joins through one ``CLUSTER MEET``; the others learn it by gossip (Redis
  Cluster specification, "Node handshake"). It is a member once every live node lists it
  and no handshake is pending anywhere.
- ``CLUSTER FORGET`` removes a node from one node's table and blacklists its id there
  for 60 seconds, so gossip from nodes that still know it does not bring it back; to
  remove a node for good it must be forgotten by every node within that window (the
  ``CLUSTER FORGET`` page). A replica refuses to forget its own master, so the removed
  node's replicas are moved first, as ``redis-cli --cluster del-node`` does.
- Replica migration (specification, "Replica migration"): a master left without
  working replicas (orphaned) gets one from the master with the most replicas, if that
  one keeps at least ``cluster-migration-barrier``; ``cluster-allow-replica-migration no``
  turns it off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import redis

from harness import checkers
from harness.checkers import Verdict
from harness.crc16 import key_for_slot
from harness.errors import HarnessError
from harness.ops.base import deadline_s, recorded
from harness.ops.migrate import wait_settled
from harness.ops.reshard import migrate_slots
from harness.ops.slots import MigrationError, inspect_slots
from harness.topology import NodeView, parse_info
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster
    from harness.impl import Implementation

#: how long ``CLUSTER FORGET`` keeps a node out (the server's blacklist TTL, seconds)
BLACKLIST_S = 60.0


def replica_map(view: NodeView) -> dict[str, str]:
    """Replica id -> its master's id, for the replicas ``view`` does not flag failed."""
    return {
        e.node_id: e.master_id
        for e in view.nodes
        if e.is_replica and e.master_id and not e.failed and not e.in_handshake
    }


def _member_probe(cluster: Cluster, node: Node) -> tuple[bool, str]:
    """Does every live node list ``node``, with no handshake pending anywhere, and do all
    of them (``node`` too) know the same members?"""
    problems = []
    members: dict[str, frozenset[str]] = {}
    for v in cluster.snapshot(cluster.live_nodes(), with_shards=False).views:
        pending = [e.addr for e in v.nodes if e.in_handshake]
        if node.node_id not in v.by_id():
            problems.append(f"{v.observer} does not know it")
        elif pending:
            problems.append(f"{v.observer} has handshakes pending with {', '.join(pending)}")
        members[v.observer] = frozenset(v.by_id())
    if not problems and len(set(members.values())) > 1:
        sizes = ", ".join(f"{o}: {len(m)}" for o, m in members.items())
        problems.append(f"the nodes know different members ({sizes})")
    return not problems, "; ".join(problems)


def join(cluster: Cluster, node: Node, timeout: float | None = None, until_ok: bool = True) -> None:
    """``CLUSTER MEET`` from ``node`` to one live member; wait until it is a member and
    (``until_ok``) says ``cluster_state:ok``: until then it refuses keys (``CLUSTERDOWN``),
    the ones a migration sends it included."""
    seed = next(n for n in cluster.live_nodes() if n is not node)
    node.call("CLUSTER", "MEET", seed.public_host, seed.public_port)
    bound = deadline_s(cluster, timeout)
    wait_for(
        partial(_member_probe, cluster, node), bound, f"{node.name} {node.addr} known to every node"
    )
    if until_ok:
        wait_for(partial(_state_ok, node), bound, f"{node.name} {node.addr} in cluster_state:ok")


def _state_ok(node: Node) -> tuple[bool, str]:
    state = parse_info(str(node.call("CLUSTER", "INFO"))).get("cluster_state")
    return state == "ok", f"cluster_state:{state}"


def add_master(
    cluster: Cluster,
    *,
    impl: Implementation | None = None,
    timeout: float | None = None,
    until_ok: bool = True,
) -> Node:
    """Start a node (running ``impl`` if given, else the cluster's implementation),
    ``MEET`` it and wait until it is a member: a master with no slots; with ``until_ok``
    (default) also until it says ``cluster_state:ok`` (it can then take slots: a node
    still in ``fail`` refuses the keys a migration sends it)."""
    (node,) = cluster.add_nodes(1, impl)
    with recorded(cluster, "add-master", node.addr, f"{node.name}, no slots") as step:
        join(cluster, node, timeout, until_ok)
        step.whole = until_ok  # before it is ok it may not know every slot's owner yet
        step.result = f"{node.name} known to {len(cluster.live_nodes())} nodes"
    return node


def add_replica(
    cluster: Cluster,
    master: Node,
    *,
    impl: Implementation | None = None,
    timeout: float | None = None,
) -> Node:
    """Start a node (running ``impl`` if given: a rolling upgrade's new-version replica),
    join it, ``CLUSTER REPLICATE master``; wait until every live node lists it as
    ``master``'s replica, its first sync is done (``master_link_status:up``, no sync in
    progress) and the master streams to it (a write acknowledged by ``WAIT``)."""
    (node,) = cluster.add_nodes(1, impl)
    bound = deadline_s(cluster, timeout)
    with recorded(cluster, "add-replica", node.addr, f"{node.name} of {master.addr}") as step:
        join(cluster, node, timeout, until_ok=False)  # a replica takes no slots
        wait_for(
            partial(cluster._try_replicate, node, master),
            bound,
            f"{node.addr} replicating {master.addr}",
        )
        wait_for(
            partial(_replica_everywhere, cluster, node, master),
            bound,
            f"{node.addr} a synced replica of {master.addr} as every node sees it",
        )
        wait_for(partial(_streams_to, cluster, master), bound, f"{master.addr} streaming to it")
        step.result = f"{node.name} synced with {master.addr}"
    return node


def _replica_everywhere(cluster: Cluster, node: Node, master: Node) -> tuple[bool, str]:
    synced, seen = cluster.probe_replica_of(node, master)
    if not synced:
        return False, seen
    for v in cluster.snapshot(cluster.live_nodes(), with_shards=False).views:
        if replica_map(v).get(node.node_id or "") != master.node_id:
            return False, f"{v.observer} does not list it as a replica of {master.addr}"
    return True, seen


def _streams_to(cluster: Cluster, master: Node) -> tuple[bool, str]:
    """A write on ``master`` acknowledged (``WAIT``) by all its replicas: their first
    sync is over and the stream flows (see ``Formation._unstreamed_replicas``)."""
    want = int(cluster.replication_info(master).get("connected_slaves", "0"))
    me = cluster.view(master, with_shards=False).myself
    if me is None or not me.slots:
        return True, "the master owns no slot to write to: nothing streams yet"
    key = key_for_slot(me.slots[0][0], prefix="harness:ops:stream:")
    with master.client(timeout=3.0) as c:
        c.execute_command("SET", key, "1")
        c.execute_command("DEL", key)
        acked = int(str(c.execute_command("WAIT", want, 1000)))
    return acked >= want, f"{acked} of {want} replicas acknowledged a write"


def forget_node(cluster: Cluster, node: Node, *, timeout: float | None = None) -> None:
    """``CLUSTER FORGET node`` on every other live node, all inside the 60 s blacklist
    window; wait until none lists it. Refused for a node that still owns slots, or
    that a live node still replicates."""
    with recorded(cluster, "forget", node.addr, node.name) as step:
        others = [n for n in cluster.live_nodes() if n is not node]
        _check_forgettable(cluster, node, others)
        t0 = time.monotonic()
        for n in others:
            try:
                n.call("CLUSTER", "FORGET", node.node_id)
            except redis.exceptions.ResponseError as exc:
                if "Unknown node" not in str(exc):
                    raise MigrationError(f"{n.addr} refused to forget {node.addr}: {exc}") from None
        took = time.monotonic() - t0
        if took >= BLACKLIST_S:
            raise MigrationError(
                f"forgetting {node.addr} took {took:.0f} s, longer than the {BLACKLIST_S:.0f} s "
                "blacklist: the first nodes may have re-learned it"
            )
        wait_for(
            partial(_forgotten, cluster, node, others),
            min(deadline_s(cluster, timeout), BLACKLIST_S - took),
            f"{node.addr} forgotten by every other node",
        )
        step.result = f"forgotten by {len(others)} nodes in {took * 1000:.0f} ms"


def _check_forgettable(cluster: Cluster, node: Node, others: Sequence[Node]) -> None:
    for v in cluster.snapshot(list(others), with_shards=False).views:
        entry = v.by_id().get(node.node_id or "")
        if entry is not None and entry.slots:
            raise MigrationError(
                f"{node.addr} still owns slots as {v.observer} sees it: drain it first",
                inspect_slots(cluster, [lo for lo, _ in entry.slots[:3]]),
            )
        me = v.myself
        if me is not None and me.master_id == node.node_id:  # "Can't forget my master!"
            raise MigrationError(f"{v.observer} replicates {node.addr}: move it first")


def _forgotten(cluster: Cluster, node: Node, others: Sequence[Node]) -> tuple[bool, str]:
    still = []
    for v in cluster.snapshot(list(others), with_shards=False).views:
        if any(e.node_id == node.node_id or e.addr == node.public_addr for e in v.nodes):
            still.append(v.observer)
    return not still, f"still listed by {', '.join(still)}"


def remove_node(cluster: Cluster, node: Node, *, timeout: float | None = None) -> None:
    """Take ``node`` out of the cluster: drain its slots evenly to the other masters
    (whole documented order), move its replicas to the master with the fewest, forget it
    on every other node, stop it, and drop it from ``cluster.nodes`` (into
    ``cluster.retired``: the backend still cleans it up, its log is still reported)."""
    if node not in cluster.nodes:
        raise HarnessError(f"{node.name} {node.addr} is not a node of this cluster")
    with recorded(cluster, "remove-node", node.addr, node.name) as step:
        moved = drain(cluster, node, timeout)
        _rehome_replicas(cluster, node, timeout)
        forget_node(cluster, node, timeout=timeout)
        node.stop()
        cluster.nodes.remove(node)
        cluster.retired.append(node)
        wait_for(
            partial(_agreed, cluster),
            deadline_s(cluster, timeout),
            f"the nodes left agreeing on roles without {node.addr}",
        )
        step.result = f"{node.name} removed, {moved} keys moved off it"


def _agreed(cluster: Cluster) -> tuple[bool, str]:
    """Do the live nodes agree on the map, the members and the roles, every replica
    following a master they know? (A node that knew the removed node's replicas as its
    replicas learns their new master from their next ping.)"""
    snap = cluster.snapshot(cluster.live_nodes(), with_shards=False)
    verdict = Verdict.combine(
        [checkers.agreement(snap), *(checkers.replicas_follow_live_masters(v) for v in snap.views)]
    )
    return verdict.ok, str(verdict)


def drain(cluster: Cluster, node: Node, timeout: float | None = None) -> int:
    """Move every slot of ``node`` to the other live masters, evenly; keys moved."""
    view = cluster.view(node, with_shards=False)
    me = view.myself
    slots = [s for lo, hi in me.slots for s in range(lo, hi + 1)] if me else []
    if not slots:
        return 0
    owners = [m for m in cluster.masters() if m is not node and m in cluster.live_nodes()]
    if not owners:
        raise MigrationError(f"{node.addr} is the only master: its slots have nowhere to go")
    share, extra = divmod(len(slots), len(owners))
    moved, at = 0, 0
    to: dict[int, Node] = {}
    for i, target in enumerate(owners):
        part = slots[at : at + share + (1 if i < extra else 0)]
        at += len(part)
        if part:
            moved += migrate_slots(cluster, node, target, part, timeout=timeout, wait=False)
            to.update(dict.fromkeys(part, target))
    wait_settled(cluster, to, timeout)
    return moved


def _rehome_replicas(cluster: Cluster, node: Node, timeout: float | None) -> None:
    """Replicas of ``node`` (an emptied master's replicas may already have moved to its
    last target) follow the live master that has the fewest replicas."""

    def settled() -> tuple[bool, str]:
        followers = [
            n
            for n in cluster.live_nodes()
            if n is not node
            and (me := cluster.view(n, with_shards=False).myself) is not None
            and me.master_id == node.node_id
        ]
        if not followers:
            return True, "none follows it"
        view = cluster.view(cluster.live_nodes()[0], with_shards=False)
        counts = {
            m.node_id: sum(1 for x in replica_map(view).values() if x == m.node_id)
            for m in cluster.masters()
            if m is not node
        }
        for f in followers:
            best = min(counts, key=lambda i: (counts[i], i))
            f.call("CLUSTER", "REPLICATE", best)
            counts[best] += 1
        return False, f"{', '.join(f.addr for f in followers)} moved off it"

    wait_for(settled, deadline_s(cluster, timeout), f"no replica of {node.addr} left")


def wait_replica_migration(
    cluster: Cluster,
    orphan: Node,
    *,
    timeout: float | None = None,
    before: dict[str, str] | None = None,
) -> Node:
    """Wait until every live node lists a working replica of ``orphan`` that was another
    master's before (``before``: a :func:`replica_map` taken earlier; default: now, so
    call it before the orphaning fault), and that replica says so itself; return it and
    record ``replica-migrated``."""
    if before is None:
        before = replica_map(cluster.view(cluster.live_nodes()[0], with_shards=False))

    def migrated() -> tuple[bool, Node | str]:
        seen: set[str] | None = None
        for v in cluster.snapshot(cluster.live_nodes(), with_shards=False).views:
            now = {r for r, m in replica_map(v).items() if m == orphan.node_id}
            fresh = {r for r in now if before.get(r) not in (None, orphan.node_id)}
            seen = fresh if seen is None else seen & fresh
        if not seen:
            return False, f"no node moved to {orphan.addr} as every live node sees it"
        replica = cluster.node_by_id(min(seen))
        ok, said = cluster.probe_replica_of(replica, orphan)
        return ok, replica if ok else said

    got = wait_for(migrated, deadline_s(cluster, timeout), f"a replica migrating to {orphan.addr}")
    assert not isinstance(got, str)
    cluster.record("replica-migrated", got.addr, f"to orphaned {orphan.addr}")
    return got
