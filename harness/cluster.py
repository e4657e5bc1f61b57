"""A Redis Cluster under test: formation by commands, readiness, snapshots, clients.

Formation uses the cluster commands directly (ADDSLOTS[RANGE], SET-CONFIG-EPOCH, MEET,
REPLICATE) instead of ``redis-cli --cluster create``: it is faster, works for any
implementation that speaks the protocol, and every step can report what it saw.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import redis
from redis.cluster import ClusterNode as RedisClusterNode
from redis.cluster import RedisCluster

from harness.backends import Backend, Node, get_backend
from harness.checkers import Verdict, healthy
from harness.crc16 import key_for_slot
from harness.errors import HarnessError
from harness.faults import Faults
from harness.history import Event
from harness.impl import Implementation
from harness.spec import ClusterSpec, slot_ranges
from harness.topology import (
    NodeEntry,
    NodeView,
    Snapshot,
    parse_cluster_nodes,
    parse_cluster_shards,
    parse_info,
)
from harness.wait import wait_for


@functools.cache
def _ready_key(slot: int) -> str:
    return key_for_slot(slot, prefix="harness:ready:")


@dataclass
class Cluster:
    """Nodes formed into a cluster. Create through :meth:`start` (or the pytest fixtures)."""

    spec: ClusterSpec
    impl: Implementation
    backend: Backend
    nodes: list[Node]
    events: list[Event] = field(default_factory=list)
    bringup_ms: float = 0.0
    _clients: list[RedisCluster] = field(default_factory=list)
    faults: Faults = field(init=False)

    def __post_init__(self) -> None:
        self.faults = Faults(self)

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def start(
        cls,
        impl: Implementation,
        spec: ClusterSpec | None = None,
        backend: Backend | str = "local",
        ports: list[int] | None = None,
    ) -> Cluster:
        """Start, form and wait for a ready cluster; on any failure nothing stays running."""
        spec = spec or ClusterSpec()
        if isinstance(backend, str):
            be = get_backend(backend)(network_faults=spec.network_faults)
        else:
            be = backend
        t0 = time.monotonic()
        try:
            nodes = be.create_nodes(impl, spec.node_config(), spec.size, ports)
            cluster = cls(spec, impl, be, nodes)
            if spec.proxied:
                cluster.faults.wire()
            cluster.form()
            cluster.wait_ready(spec.ready_timeout_s)
        except BaseException:
            if "cluster" in locals():
                cluster.close()
            else:
                be.close()
            raise
        cluster.bringup_ms = (time.monotonic() - t0) * 1000
        cluster.record("ready", "cluster", f"{cluster.bringup_ms:.0f} ms")
        return cluster

    def close(self) -> None:
        for c in self._clients:
            with contextlib.suppress(Exception):  # teardown must go on
                c.close()
        self._clients.clear()
        self.faults.close()
        self.backend.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, action: str, node: str, detail: str = "") -> Event:
        """Put a step on the timeline (faults record themselves; suites mark what they
        observed: ``promoted``, ``fail-flag``...), and into every live node's log with
        ``DEBUG LOG``, so a server log reads next to the timeline."""
        ev = Event(time.monotonic_ns(), action, node, detail, time.time_ns())
        self.events.append(ev)
        line = f"harness: {action} {node} {detail}".rstrip()
        for n in self.live_nodes():
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                n.call("DEBUG", "LOG", line, timeout=0.5)
        return ev

    # -- formation -----------------------------------------------------------------
    @property
    def initial_masters(self) -> list[Node]:
        return self.nodes[: self.spec.masters]

    @property
    def initial_replicas(self) -> list[Node]:
        return self.nodes[self.spec.masters :]

    def initial_master_of(self, replica: Node) -> Node:
        return self.nodes[(replica.index - self.spec.masters) % self.spec.masters]

    def form(self) -> None:
        for n in self.nodes:
            n.node_id = str(n.call("CLUSTER", "MYID"))
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
        for r in self.initial_replicas:
            master = self.initial_master_of(r)
            wait_for(
                partial(self._try_replicate, r, master),
                15,
                f"{r.name} {r.addr} replicating {master.name} {master.addr}",
            )

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

    # -- observation -------------------------------------------------------------
    def live_nodes(self) -> list[Node]:
        """Nodes the harness believes are serving and reachable (not killed, stopped,
        paused or isolated)."""
        cut = self.faults.isolated_nodes
        return [n for n in self.nodes if n.state == "running" and n not in cut]

    def view(self, node: Node, with_shards: bool = True) -> NodeView:
        with node.client(timeout=2.0) as c:
            entries = parse_cluster_nodes(str(c.execute_command("CLUSTER", "NODES")))
            info = parse_info(str(c.execute_command("CLUSTER", "INFO")))
            shards = None
            if with_shards and self.impl.has("cluster_shards"):
                shards = tuple(parse_cluster_shards(c.execute_command("CLUSTER", "SHARDS")))
        return NodeView(node.addr, tuple(entries), info, shards)

    def snapshot(self, nodes: Sequence[Node] | None = None, with_shards: bool = True) -> Snapshot:
        """Ask each node (default: all of them) for its view; dead ones are listed as
        unreachable with the reason."""
        views = []
        unreachable: dict[str, str] = {}
        for n in nodes if nodes is not None else self.nodes:
            cut = n in self.faults.isolated_nodes
            if n.state != "running" or cut:
                unreachable[n.addr] = "isolated" if cut else n.state
                continue
            try:
                views.append(self.view(n, with_shards))
            except redis.exceptions.RedisError as exc:
                unreachable[n.addr] = f"{type(exc).__name__}: {exc} [{n.process_state()}]"
        return Snapshot(tuple(views), unreachable)

    def check(self, nodes: Sequence[Node] | None = None) -> Verdict:
        """All topology checks on the given (default: live) nodes."""
        return healthy(self.snapshot(nodes if nodes is not None else self.live_nodes()))

    def replication_info(self, node: Node) -> dict[str, str]:
        return parse_info(str(node.call("INFO", "replication")))

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

    def wait_ready(self, timeout: float | None = None, nodes: Sequence[Node] | None = None) -> None:
        """Wait until every node (default: every live one) reports ``cluster_state:ok``
        with all slots, all agree on the map, every replica finished its first sync and
        the masters stream to them (see :meth:`_unstreamed_replicas`)."""
        wait_for(
            lambda: self._readiness(nodes if nodes is not None else self.live_nodes(), None),
            timeout or self.spec.ready_timeout_s,
            f"cluster of {len(self.nodes)} ready",
            describe=lambda s: f"\n  {s}",
        )

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

    # -- clients --------------------------------------------------------------------
    def client(self, **kwargs: Any) -> RedisCluster:
        """A redis-py cluster client bootstrapped from all nodes; closed with the cluster."""
        opts: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5.0}
        opts.update(kwargs)
        seeds = [RedisClusterNode(n.public_host, n.public_port) for n in self.live_nodes()]  # type: ignore[no-untyped-call]
        c = RedisCluster(startup_nodes=seeds, **opts)
        self._clients.append(c)
        return c

    @contextmanager
    def node_client(self, node: Node, timeout: float = 2.0) -> Iterator[redis.Redis]:
        c = node.client(timeout)
        try:
            yield c
        finally:
            c.close()

    def endpoints(self) -> list[str]:
        return [n.addr for n in self.nodes]

    def logs(self, max_bytes: int = 20000) -> dict[str, str]:
        return {f"{n.name} {n.addr}": n.log_text(max_bytes) for n in self.nodes}

    def describe(self) -> str:
        return f"{self.spec.masters}x{self.spec.replicas} {self.impl.describe()} on {self.backend.name}"
