"""Forming a cluster and waiting until it is ready: what "ready" means is here.

Formation uses the cluster commands directly (ADDSLOTS[RANGE], SET-CONFIG-EPOCH, MEET,
REPLICATE) by default: it is faster, works for any implementation that speaks the
protocol, and every step can report what it saw. ``formation="redis-cli"`` has the
server's own tool do it instead (``--cluster create``, :mod:`harness.clitool`), which
picks masters and replicas by its own rules; either way the roles the cluster was given
are read once formed (:class:`Roles`), never assumed from node order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import redis

from harness.backends import Node
from harness.checkers import healthy
from harness.crc16 import key_for_slot
from harness.errors import HarnessError
from harness.observe import Observation
from harness.spec import ClusterSpec, slot_ranges
from harness.topology import NodeEntry
from harness.wait import wait_for


@functools.cache
def _ready_key(slot: int) -> str:
    return key_for_slot(slot, prefix="harness:ready:")


@dataclass(frozen=True)
class Roles:
    """Who was made master at formation (by their first slot, so ``masters[0]`` owns
    slot 0), and whom each replica was made to follow. Nodes added later are in neither."""

    masters: tuple[Node, ...]
    master_of: Mapping[Node, Node]

    @property
    def replicas(self) -> list[Node]:
        """By their master's rank, then node order."""
        rank = {m: i for i, m in enumerate(self.masters)}
        return sorted(self.master_of, key=lambda r: (rank[self.master_of[r]], r.index))


class Formation(Observation):
    """Formation and readiness of :class:`~harness.cluster.Cluster` (a mixin: the
    cluster holds the state)."""

    spec: ClusterSpec
    roles: Roles | None = None  # set by form()

    def _planned(self) -> Roles:
        """The roles :meth:`form` gives with the cluster commands: the first nodes are
        the masters, in slot order; replica ``i`` follows master ``i mod masters``."""
        masters = tuple(self.nodes[: self.spec.masters])
        replicas = self.nodes[self.spec.masters : self.spec.size]
        return Roles(masters, {r: masters[i % len(masters)] for i, r in enumerate(replicas)})

    @property
    def initial_masters(self) -> list[Node]:
        return list((self.roles or self._planned()).masters)

    @property
    def initial_replicas(self) -> list[Node]:
        return (self.roles or self._planned()).replicas

    def initial_master_of(self, replica: Node) -> Node:
        roles = self.roles or self._planned()
        if replica not in roles.master_of:
            raise HarnessError(f"{replica.name} {replica.addr} was no replica at formation")
        return roles.master_of[replica]

    def form(self) -> None:
        for n in self.nodes:
            n.node_id = str(n.call("CLUSTER", "MYID"))
        if self.spec.formation == "redis-cli":
            from harness.clitool import ClusterCli

            ClusterCli(self).create()  # type: ignore[arg-type]
            self.roles = self._formed_roles()
            return
        self.roles = self._planned()
        for m, (lo, hi) in zip(self.initial_masters, slot_ranges(self.spec.masters), strict=True):
            if self.impl.has("addslotsrange"):
                m.call("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            else:
                m.call("CLUSTER", "ADDSLOTS", *range(lo, hi + 1))
        # Distinct epochs up front, as redis-cli does: no epoch collision to resolve later.
        for i, n in enumerate(self.nodes):
            n.call("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        # Meet every pair directly rather than relying on gossip to spread membership:
        # handshakes then finish within one cron tick, well inside the server's own 2 s
        # writable delay, which is the floor of a bring-up.
        for i, a in enumerate(self.nodes):
            for b in self.nodes[i + 1 :]:
                a.call("CLUSTER", "MEET", b.public_host, b.public_port)
        for r, master in self.roles.master_of.items():
            wait_for(
                partial(self._try_replicate, r, master),
                15,
                f"{r.name} {r.addr} replicating {master.name} {master.addr}",
            )

    def _formed_roles(self) -> Roles:
        """The roles as each node says of itself (its ``myself`` line): the tool chose."""
        masters: list[tuple[int, Node]] = []
        follows: dict[Node, str] = {}
        for n in self.nodes:
            me = self.view(n, with_shards=False).myself
            if me is not None and me.is_master and me.slots:
                masters.append((me.slots[0][0], n))
            elif me is not None and me.is_replica and me.master_id:
                follows[n] = me.master_id
            else:
                flags = sorted(me.flags) if me else "no myself line"
                raise HarnessError(f"{n.name} {n.addr} is neither master nor replica: {flags}")
        ranked = tuple(n for _, n in sorted(masters, key=lambda p: p[0]))
        return Roles(ranked, {r: self.node_by_id(mid) for r, mid in follows.items()})

    @staticmethod
    def _try_replicate(replica: Node, master: Node) -> tuple[bool, str]:
        """REPLICATE fails with "Unknown node" until the handshake with the master is done."""
        try:
            replica.call("CLUSTER", "REPLICATE", master.node_id)
            return True, "ok"
        except redis.exceptions.ResponseError as exc:
            if "Unknown node" in str(exc):
                return False, str(exc)
            raise

    def _readiness(self, nodes: Sequence[Node], expected: int | None) -> tuple[bool, str]:
        snap = self.snapshot(nodes)
        problems = list(healthy(snap).problems)
        for v in snap.views:
            known = int(v.info.get("cluster_known_nodes", 0))
            want = expected if expected is not None else len(self.nodes)
            if known != want:
                problems.append(f"{v.observer} knows {known} nodes, expected {want}")
            me = v.myself
            if me is not None and me.is_replica:
                rep = self.replication_info(self._node_at(v.observer))
                if (
                    rep.get("master_link_status") != "up"
                    or rep.get("master_sync_in_progress") != "0"
                ):
                    problems.append(
                        f"{v.observer} replica sync not finished (link {rep.get('master_link_status')}, "
                        f"sync_in_progress {rep.get('master_sync_in_progress')})"
                    )
            busy = [n for n in v.nodes if n.suspected or n.in_handshake]
            if busy:
                problems.append(
                    f"{v.observer} still sees {', '.join(f'{n.addr} {sorted(n.flags)}' for n in busy)}"
                )
        if not problems and snap.views:
            problems = self._unstreamed_replicas(snap.views[0].nodes, nodes)
        if problems:
            return False, "\n  ".join(problems) + "\n" + snap.describe()
        return True, ""

    def _unstreamed_replicas(
        self, entries: Sequence[NodeEntry], nodes: Sequence[Node]
    ) -> list[str]:
        r"""Masters not yet streaming to all their live replicas. A replica that finished a
        full sync over a socket reports itself synced while its master still holds the new
        writes back until the replica's next REPLCONF ACK (up to a second): a write the
        master acknowledges then is lost if it dies. So readiness writes (and deletes) a
        key on each master and ``WAIT``\ s for its replicas to acknowledge it."""
        live = {n.node_id for n in nodes}
        problems = []
        for m in entries:
            if not m.is_master or not m.slots or m.node_id not in live:
                continue
            want = sum(1 for e in entries if e.master_id == m.node_id and e.node_id in live)
            if not want:
                continue
            key = _ready_key(m.slots[0][0])
            node = self.node_by_id(m.node_id)
            try:
                with node.client(timeout=2.0) as c:
                    c.set(key, "1")
                    c.delete(key)
                    acked = int(c.execute_command("WAIT", want, 1000))
            except redis.exceptions.ResponseError as exc:
                if "unknown command" in str(exc).lower():
                    continue  # a server without WAIT: its sync state is all there is
                raise
            if acked < want:
                problems.append(
                    f"{node.addr} master: {acked} of {want} replicas acknowledged a write "
                    "(replication not streaming yet)"
                )
        return problems

    def recovery_s(self) -> float:
        """How long the cluster may take to be whole again; before it first was, the
        spec's ``ready_timeout_s`` (:meth:`Cluster.recovery_s` derives it afterwards)."""
        return self.spec.ready_timeout_s

    def wait_ready(self, timeout: float | None = None, nodes: Sequence[Node] | None = None) -> None:
        """Wait until every node (default: every live one) reports ``cluster_state:ok``
        with all slots, all agree on the map, every replica finished its first sync and
        the masters stream to them (see :meth:`_unstreamed_replicas`)."""
        wait_for(
            lambda: self._readiness(nodes if nodes is not None else self.live_nodes(), None),
            timeout or self.recovery_s(),
            f"cluster of {len(self.nodes)} ready",
            describe=lambda s: f"\n  {s}",
        )
