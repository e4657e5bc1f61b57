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

from harness import fanout
from harness.backends import Node
from harness.checkers import healthy
from harness.crc16 import key_slot
from harness.errors import HarnessError
from harness.observe import Observation
from harness.spec import ClusterSpec, slot_ranges
from harness.topology import NodeEntry, SlotRange, Snapshot
from harness.wait import wait_for


def meet_pairs(nodes: Sequence[Node]) -> dict[Node, list[Node]]:
    """Whom each node MEETs so that every pair meets exactly once and no node starts more
    than half of the handshakes (node ``i`` MEETs ``i+1 .. i+n/2`` around the ring): with
    "i MEETs every later node" the first node of 100 would start 99 at once."""
    n = len(nodes)
    out: dict[Node, list[Node]] = {a: [] for a in nodes}
    for i, a in enumerate(nodes):
        for d in range(1, n // 2 + 1):
            if 2 * d == n and i >= d:  # the pair across the ring: once, not from both ends
                continue
            out[a].append(nodes[(i + d) % n])
    return out


def _pipelined(node: Node, commands: Sequence[tuple[object, ...]]) -> list[object]:
    """``commands`` on one connection to ``node``, in one round trip; the first error
    reply is raised."""
    if not commands:
        return []
    with node.client(timeout=5.0) as c:
        pipe = c.pipeline(transaction=False)
        for cmd in commands:
            pipe.execute_command(*cmd)
        return list(pipe.execute())


@functools.cache
def _ready_key(ranges: tuple[SlotRange, ...]) -> str:
    """A key in one of a master's ``ranges``: the first of ``harness:ready:0``, ``1``, ...
    that hashes there. A master owning 1/N of the slots takes about N tries; a key for
    one given slot would take about 16384 (seconds for a 50-master cluster)."""
    i = 0
    while True:
        key = f"harness:ready:{i}"
        slot = key_slot(key)
        if any(lo <= slot <= hi for lo, hi in ranges):
            return key
        i += 1


def replicas_apart(snap: Snapshot) -> list[str]:
    """Replicas some node's ``CLUSTER SHARDS`` puts in a shard without their master.

    Just after formation a node may still hold a replica's first shard id (it learns the
    shared one from the replica's next ping, valkey-io/valkey#774), and a Valkey 8.0 node
    saving its ``nodes.conf`` then refuses that file at its next start
    (valkey-io/valkey#2171). A new cluster is ready only once this settles, so a test
    that restarts a node at once does not meet that bug by chance: the bug has its own
    scenario (``suites/regressions/test_restart_refuses_nodes_conf.py``)."""
    apart = []
    for v in snap.views:
        if v.shards is None:
            continue
        master_of = {e.node_id: e.master_id for e in v.nodes if e.master_id and not e.failed}
        for shard in v.shards:
            ids = {n.node_id for n in shard.nodes}
            apart += [
                f"{v.observer}: CLUSTER SHARDS puts replica {i[:8]} apart from its master "
                f"{master_of[i][:8]} (shard ids not settled)"
                for i in sorted(ids)
                if i in master_of and master_of[i] not in ids
            ]
    return apart


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
        """Slots, epochs, MEETs, then REPLICATE: each step sent to every node at once
        (:mod:`harness.fanout`), each node's commands pipelined on one connection, so a
        100-node formation costs a few round trips per node, not 5000 connections."""
        ids = fanout.each(lambda n: str(n.call("CLUSTER", "MYID")), self.nodes)
        for n, node_id in zip(self.nodes, ids, strict=True):
            n.node_id = node_id
        if self.spec.formation == "redis-cli":
            from harness.clitool import ClusterCli

            ClusterCli(self).create()  # type: ignore[arg-type]
            self.roles = self._formed_roles()
            return
        self.roles = self._planned()
        ranges = dict(zip(self.initial_masters, slot_ranges(self.spec.masters), strict=True))
        epochs = {n: i + 1 for i, n in enumerate(self.nodes)}
        # Meet every pair directly rather than relying on gossip to spread membership:
        # handshakes then finish within one cron tick, well inside the server's own 2 s
        # writable delay, which is the floor of a bring-up. Each pair once, the work
        # spread evenly: node i MEETs the next half of the ring (:func:`meet_pairs`).
        later = meet_pairs(self.nodes)

        def setup(n: Node) -> None:
            commands: list[tuple[object, ...]] = []
            if n in ranges:
                lo, hi = ranges[n]
                if self.impl.has("addslotsrange"):
                    commands.append(("CLUSTER", "ADDSLOTSRANGE", lo, hi))
                else:
                    commands.append(("CLUSTER", "ADDSLOTS", *range(lo, hi + 1)))
            # Distinct epochs up front, as redis-cli does: no epoch collision to resolve.
            commands.append(("CLUSTER", "SET-CONFIG-EPOCH", epochs[n]))
            _pipelined(n, commands)

        fanout.each(setup, self.nodes)
        fanout.each(
            lambda a: _pipelined(
                a, [("CLUSTER", "MEET", b.public_host, b.public_port) for b in later[a]]
            ),
            self.nodes,
        )
        pending = dict(self.roles.master_of)
        if pending:
            wait_for(
                partial(self._replicate_all, pending),
                max(15.0, self.spec.ready_timeout_s / 2),
                f"{len(pending)} replicas replicating their masters",
            )

    def _replicate_all(self, pending: dict[Node, Node]) -> tuple[bool, str]:
        """One round of REPLICATE for every replica not yet done (all at once); done
        ones leave ``pending``."""
        todo = list(pending.items())
        waiting = []
        for (r, m), (ok, why) in zip(
            todo, fanout.each(lambda rm: self._try_replicate(*rm), todo), strict=True
        ):
            if ok:
                del pending[r]
            else:
                waiting.append(f"{r.name} {r.addr} -> {m.name} {m.addr}: {why}")
        more = f" (+{len(waiting) - 3} more)" if len(waiting) > 3 else ""
        return not pending, "; ".join(waiting[:3]) + more

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

    def _readiness(
        self, nodes: Sequence[Node], expected: int | None, settled: bool = False
    ) -> tuple[bool, str]:
        """One poll of :meth:`wait_ready`. ``CLUSTER SHARDS`` is asked for only once all
        else holds: its reply is the largest to parse (about 1500 values per node on a
        100-node cluster), and a poll that fails anyway need not pay for it."""
        snap = self.snapshot(nodes, with_shards=False, with_replication=True)
        problems = self._not_ready(snap, expected)
        if not problems and self.impl.has("cluster_shards"):
            snap = self.snapshot(nodes, with_shards=True)
            problems = list(healthy(snap).problems)
            if settled and not problems:
                problems = replicas_apart(snap)
        if not problems and snap.views:
            problems = self._unstreamed_replicas(snap.views[0].nodes, nodes)
        if problems:
            return False, "\n  ".join(problems) + "\n" + snap.describe()
        return True, ""

    def _not_ready(self, snap: Snapshot, expected: int | None) -> list[str]:
        """What keeps the nodes of ``snap`` from being ready, by their own replies."""
        problems = list(healthy(snap).problems)
        want = expected if expected is not None else len(self.nodes)
        for v in snap.views:
            known = int(v.info.get("cluster_known_nodes", 0))
            if known != want:
                problems.append(f"{v.observer} knows {known} nodes, expected {want}")
            me = v.myself
            if me is not None and me.is_replica:
                rep = v.replication or {}
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
        return problems

    def _unstreamed_replicas(
        self, entries: Sequence[NodeEntry], nodes: Sequence[Node]
    ) -> list[str]:
        r"""Masters not yet streaming to all their live replicas. A replica that finished a
        full sync over a socket reports itself synced while its master still holds the new
        writes back until the replica's next REPLCONF ACK (up to a second): a write the
        master acknowledges then is lost if it dies. So readiness writes (and deletes) a
        key on each master and ``WAIT``\ s for its replicas to acknowledge it."""
        live = {n.node_id for n in nodes}
        todo: list[tuple[Node, str, int]] = []
        for m in entries:
            if not m.is_master or not m.slots or m.node_id not in live:
                continue
            want = sum(1 for e in entries if e.master_id == m.node_id and e.node_id in live)
            if want:
                todo.append((self.node_by_id(m.node_id), _ready_key(m.slots), want))
        # WAIT blocks up to a second per master until the replica's first ACK: no CPU, so
        # every master waits at once
        found = fanout.each(lambda job: self._streaming(*job), todo, workers=len(todo))
        return [p for p in found if p is not None]

    @staticmethod
    def _streaming(node: Node, key: str, want: int) -> str | None:
        """Write (and delete) ``key`` on ``node`` and ``WAIT`` for ``want`` replicas; what
        is missing, or None."""
        try:
            with node.client(timeout=2.0) as c:
                pipe = c.pipeline(transaction=False)
                pipe.execute_command("SET", key, "1")
                pipe.execute_command("DEL", key)
                pipe.execute_command("WAIT", want, 1000)
                acked = int(pipe.execute()[-1])
        except redis.exceptions.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                return None  # a server without WAIT: its sync state is all there is
            raise
        if acked < want:
            return (
                f"{node.addr} master: {acked} of {want} replicas acknowledged a write "
                "(replication not streaming yet)"
            )
        return None

    def recovery_s(self) -> float:
        """How long the cluster may take to be whole again; before it first was, the
        spec's ``ready_timeout_s`` (:meth:`Cluster.recovery_s` derives it afterwards)."""
        return self.spec.ready_timeout_s

    def wait_ready(
        self,
        timeout: float | None = None,
        nodes: Sequence[Node] | None = None,
        *,
        settled_shards: bool = False,
    ) -> None:
        """Wait until every node (default: every live one) reports ``cluster_state:ok``
        with all slots, all agree on the map, every replica finished its first sync and
        the masters stream to them (see :meth:`_unstreamed_replicas`); with
        ``settled_shards`` (a new cluster), also until every node puts each replica in
        its master's shard (:func:`replicas_apart`)."""
        wait_for(
            lambda: self._readiness(
                nodes if nodes is not None else self.live_nodes(), None, settled_shards
            ),
            timeout or self.recovery_s(),
            f"cluster of {len(self.nodes)} ready",
            describe=lambda s: f"\n  {s}",
        )
