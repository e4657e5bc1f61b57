"""Observing a cluster: each node's view, snapshots, topology checks, and the probes
that ``wait_for`` polls (each answers ``(done, what was seen)``)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from harness import fanout
from harness.backends import Node
from harness.checkers import Verdict, healthy
from harness.errors import HarnessError
from harness.faults import Faults
from harness.impl import Implementation
from harness.topology import (
    NodeView,
    Snapshot,
    parse_cluster_nodes,
    parse_cluster_shards,
    parse_info,
)


class Observation:
    """What a :class:`~harness.cluster.Cluster` can be asked (a mixin: the cluster holds
    the nodes, the implementation and the fault state)."""

    nodes: list[Node]
    impl: Implementation
    faults: Faults

    def live_nodes(self) -> list[Node]:
        """Nodes the harness believes are serving and reachable (not killed, stopped,
        paused or isolated)."""
        cut = self.faults.isolated_nodes
        return [n for n in self.nodes if n.state == "running" and n not in cut]

    def view(
        self, node: Node, with_shards: bool = True, *, with_replication: bool = False
    ) -> NodeView:
        """What ``node`` reports, in one round trip (the commands pipelined):
        ``CLUSTER NODES``, ``CLUSTER INFO``, ``CLUSTER SHARDS`` (where supported) and,
        with ``with_replication``, ``INFO replication``."""
        # per node: a cluster being upgraded has nodes of two versions
        shards_too = with_shards and getattr(node, "impl", self.impl).has("cluster_shards")
        with node.client(timeout=2.0) as c:
            pipe = c.pipeline(transaction=False)
            pipe.execute_command("CLUSTER", "NODES")
            pipe.execute_command("CLUSTER", "INFO")
            if shards_too:
                pipe.execute_command("CLUSTER", "SHARDS")
            if with_replication:
                pipe.execute_command("INFO", "replication")
            replies = list(pipe.execute())
        entries = parse_cluster_nodes(str(replies.pop(0)))
        info = parse_info(str(replies.pop(0)))
        shards = tuple(parse_cluster_shards(replies.pop(0))) if shards_too else None
        replication = parse_info(str(replies.pop(0))) if with_replication else None
        return NodeView(node.addr, tuple(entries), info, shards, replication)

    def snapshot(
        self,
        nodes: Sequence[Node] | None = None,
        with_shards: bool = True,
        *,
        with_replication: bool = False,
    ) -> Snapshot:
        """Ask each node (default: all of them) for its view, all at once
        (:mod:`harness.fanout`); dead ones are listed as unreachable with the reason."""
        chosen = list(nodes if nodes is not None else self.nodes)
        skipped: dict[str, str] = {}
        for n in chosen:
            cut = n in self.faults.isolated_nodes
            if n.state != "running" or cut:
                skipped[n.addr] = "isolated" if cut else n.state

        def ask(n: Node) -> NodeView | str:
            try:
                return self.view(n, with_shards, with_replication=with_replication)
            except redis.exceptions.RedisError as exc:
                return f"{type(exc).__name__}: {exc} [{n.process_state()}]"

        asked = [n for n in chosen if n.addr not in skipped]
        got = dict(zip((n.addr for n in asked), fanout.each(ask, asked), strict=True))
        views = []
        unreachable: dict[str, str] = {}
        for n in chosen:  # in the order asked for
            seen = skipped.get(n.addr) or got[n.addr]
            if isinstance(seen, str):
                unreachable[n.addr] = seen
            else:
                views.append(seen)
        return Snapshot(tuple(views), unreachable)

    def check(self, nodes: Sequence[Node] | None = None) -> Verdict:
        """All topology checks on the given (default: live) nodes."""
        return healthy(self.snapshot(nodes if nodes is not None else self.live_nodes()))

    def replication_info(self, node: Node) -> dict[str, str]:
        return parse_info(str(node.call("INFO", "replication")))

    def _node_at(self, addr: str) -> Node:
        for n in self.nodes:
            if n.addr == addr:
                return n
        raise HarnessError(f"no node at {addr} in this cluster")

    def node_by_id(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise HarnessError(f"no node with id {node_id} in this cluster")

    def masters(self) -> list[Node]:
        """Current masters owning slots, as the first live node sees them."""
        view = self.view(self.live_nodes()[0], with_shards=False)
        return [
            self.node_by_id(e.node_id)
            for e in view.nodes
            if e.is_master and e.slots and not e.failed
        ]

    def replicas_of(self, master: Node) -> list[Node]:
        view = self.view(self.live_nodes()[0], with_shards=False)
        return [
            self.node_by_id(e.node_id)
            for e in view.nodes
            if e.master_id == master.node_id and not e.failed
        ]

    def owner_of_slot(self, slot: int, observer: Node | None = None) -> Node:
        view = self.view(observer or self.live_nodes()[0], with_shards=False)
        owner = view.slot_owners()[slot]
        if owner is None:
            raise HarnessError(f"slot {slot} is unassigned as {view.observer} sees it")
        return self.node_by_id(owner)

    # -- probes for wait_for: (done, what was seen) -----------------------------------
    def first_slot(self, master: Node) -> int:
        """The first slot ``master`` owns (by its own view)."""
        me = self.view(master, with_shards=False).myself
        if me is None or not me.slots:
            raise HarnessError(f"{master.addr} owns no slots")
        return me.slots[0][0]

    @staticmethod
    def probe_write(node: Node, key: str, value: str = "probe") -> tuple[bool, str]:
        """Does ``node`` itself accept a write for ``key`` (no MOVED, no CLUSTERDOWN)?"""
        try:
            node.call("SET", key, value, timeout=0.5)
            return True, "ok"
        except redis.exceptions.RedisError as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def probe_replica_of(self, node: Node, master: Node) -> tuple[bool, str]:
        """Is ``node`` a replica of ``master`` with its sync finished?"""
        entry = self.view(node, with_shards=False).myself
        rep = self.replication_info(node)
        ok = (
            entry is not None
            and entry.master_id == master.node_id
            and rep.get("master_link_status") == "up"
            and rep.get("master_sync_in_progress") == "0"
        )
        flags = sorted(entry.flags) if entry else None
        master_id = entry.master_id if entry else None
        return (
            ok,
            f"{node.addr}: flags={flags} master={master_id} link={rep.get('master_link_status')}",
        )

    def probe_healthy(self) -> tuple[bool, str]:
        """Do the live nodes pass every topology check?"""
        verdict = healthy(self.snapshot(self.live_nodes()))
        return verdict.ok, str(verdict)

    def probe_flagged_failed(self, node: Node) -> tuple[bool, str]:
        """Does every other live node flag ``node`` as failed?"""
        others = [n for n in self.live_nodes() if n is not node]
        flags = {}
        for v in self.snapshot(others, with_shards=False).views:
            entry = v.by_id().get(node.node_id or "")
            flags[v.observer] = sorted(entry.flags) if entry else ["unknown"]
        return bool(flags) and all("fail" in f for f in flags.values()), str(flags)
