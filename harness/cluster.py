"""A Redis Cluster under test: its lifecycle, its timeline and its clients.

Formation and readiness (:mod:`harness.formation`), observation and probes
(:mod:`harness.observe`) and faults (:mod:`harness.faults`) are their own modules; a
:class:`Cluster` brings them together on one set of nodes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster

from harness import fanout, guard, progress
from harness.backends import Backend, Node, get_backend
from harness.errors import NotSupportedError
from harness.faults import Faults
from harness.formation import Formation
from harness.history import Event
from harness.impl import Implementation
from harness.security import PLAIN, Security, tls_unsupported
from harness.spec import ClusterSpec


@dataclass
class Cluster(Formation):
    """Nodes formed into a cluster. Create through :meth:`start` (or the pytest fixtures)."""

    spec: ClusterSpec
    impl: Implementation
    backend: Backend
    nodes: list[Node]
    events: list[Event] = field(default_factory=list)
    bringup_ms: float = 0.0
    #: after each operation of :mod:`harness.ops`, ask the server's own ``--cluster check``
    #: too (where the implementation has its tool here)
    cli_check: bool = True
    _clients: list[RedisCluster] = field(default_factory=list)
    faults: Faults = field(init=False)
    #: nodes removed from the cluster (:func:`harness.ops.remove_node`): no longer in
    #: ``nodes``, still the backend's to clean up, their logs still reported
    retired: list[Node] = field(default_factory=list)

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
        if spec.tls and impl.image is None and (reason := tls_unsupported(impl.binary)):
            raise NotSupportedError(reason)
        if isinstance(backend, str):
            be = get_backend(backend)(network_faults=spec.network_faults)
        else:
            be = backend
        t0 = time.monotonic()
        progress.phase(f"bring-up: {spec.size} nodes ({spec.masters}x{spec.replicas}) on {be.name}")
        try:
            nodes = be.create_nodes(impl, spec.node_config(), spec.size, ports)
            cluster = cls(spec, impl, be, nodes)
            if spec.proxied:
                cluster.faults.wire()
            cluster.form()
            progress.phase("bring-up: formed, waiting until ready")
            cluster.wait_ready(spec.ready_timeout_s, settled_shards=True)
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

    def add_nodes(self, count: int = 1, impl: Implementation | None = None) -> list[Node]:
        """Start ``count`` new empty nodes beside the cluster's (same settings), not yet
        members: :mod:`harness.ops` joins them (scaling out). They run ``impl`` if given
        (a rolling upgrade's new-version replicas), else the cluster's implementation."""
        if self.spec.proxied:
            raise NotSupportedError("nodes cannot be added to a proxied cluster")
        nodes = self.backend.add_nodes(count, impl)
        for n in nodes:
            n.node_id = str(n.call("CLUSTER", "MYID"))
        self.nodes.extend(nodes)
        running = f", {impl.describe()}" if impl is not None else ""
        self.record("started", ",".join(n.name for n in nodes), f"new empty nodes{running}")
        return nodes

    def recovery_s(self) -> float:
        """How long a correct cluster may take to be whole again after a fault: an
        automatic failover (:meth:`ClusterSpec.failover_bound_ms`, from the node timeout)
        plus a node's restart and full resync, which is what this cluster's own bring-up
        measured on this machine (start, form, first sync: slower on a busy machine, and
        the bound with it). Doubled: a fault may need both in turn (the failover, then
        the old master's rejoin as a replica of the new one)."""
        if self.bringup_ms <= 0:  # not up yet: the bring-up's own bound
            return self.spec.ready_timeout_s
        return 2 * (self.spec.failover_bound_ms() + self.bringup_ms) / 1000

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self, action: str, node: str, detail: str = "", *, ahead: bool = False) -> Event:
        """Put a step on the timeline (faults record themselves; suites mark what they
        observed: ``promoted``, ``fail-flag``...), and into every live node's log with
        ``DEBUG LOG``, so a server log reads next to the timeline. ``ahead``: the step is
        about to happen (a fault being injected), so the log lines are written first and
        the time taken just before it happens; otherwise the time is when it was seen."""
        line = f"harness: {action} {node} {detail}".rstrip()
        if not ahead:
            ev = Event(time.monotonic_ns(), action, node, detail, time.time_ns())

        def log(n: Node) -> None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                n.call("DEBUG", "LOG", line, timeout=0.5)

        # every node at once: on a 100-node cluster one by one takes a noticeable while
        fanout.each(log, [n for n in self.live_nodes() if n not in self.faults.busy])
        if ahead:
            ev = Event(time.monotonic_ns(), action, node, detail, time.time_ns())
        self.events.append(ev)
        progress.step(action, node, detail, ahead=ahead)
        return ev

    # -- clients --------------------------------------------------------------------
    @property
    def security(self) -> Security:
        """The cluster's credentials and TLS files (:mod:`harness.security`)."""
        return self.nodes[0].security if self.nodes else PLAIN

    def client(self, **kwargs: Any) -> RedisCluster:
        """A redis-py cluster client bootstrapped from all nodes, with the cluster's
        credentials and TLS; closed with the cluster. It follows the cluster's map only to
        addresses the harness may connect to (:mod:`harness.guard`)."""
        opts: dict[str, Any] = {"decode_responses": True, "socket_timeout": 5.0}
        opts.update(self.security.redis_kwargs())
        opts.update(kwargs)
        seeds = [(n.public_host, n.public_port) for n in self.live_nodes()]
        c = guard.cluster_client(seeds, **opts)
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
        return {f"{n.name} {n.addr}": n.log_text(max_bytes) for n in [*self.nodes, *self.retired]}

    def describe(self) -> str:
        sec = ["tls"] if self.spec.tls else []
        sec += [f"auth {self.spec.auth}"] if self.spec.auth != "none" else []
        shown = f" ({', '.join(sec)})" if sec else ""
        return (
            f"{self.spec.masters}x{self.spec.replicas} {self.impl.describe()} "
            f"on {self.backend.name}{shown}"
        )
