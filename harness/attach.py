"""A :class:`~harness.cluster.Cluster` over nodes someone else runs (``--backend
external``): shaped as the nodes report, never formed, and with a timeline that stays in
the harness (it writes nothing into the logs of servers it does not own)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.backends import Node
from harness.backends.external import Discovery, ExternalBackend, discover
from harness.cluster import Cluster
from harness.errors import UsageError
from harness.history import Event
from harness.impl import Implementation
from harness.security import PLAIN, Security
from harness.spec import ClusterSpec


def attach(
    named: Sequence[tuple[str, int]],
    impl: Implementation,
    backend: ExternalBackend | None = None,
    security: Security = PLAIN,
) -> AttachedCluster:
    """A :class:`~harness.cluster.Cluster` over the running nodes, shaped as they are,
    reached with ``security`` (the credentials and TLS files given for them)."""
    found = discover(named, security)
    masters, replicas = found.shape()
    timeout = found.node_timeout_ms or ClusterSpec.node_timeout_ms
    spec = ClusterSpec(  # auth and tls as described; the password stays with ``security``
        masters, replicas, timeout, auth=security.spec.auth, tls=security.tls
    )
    return AttachedCluster(
        spec, impl, backend or ExternalBackend(), list(found.nodes), discovery=found
    )


@dataclass
class AttachedCluster(Cluster):
    """Roles come from what the nodes reported when the harness attached."""

    discovery: Discovery | None = None

    def _found(self) -> Discovery:
        assert self.discovery is not None, "created by attach()"
        return self.discovery

    @property
    def initial_masters(self) -> list[Node]:
        return list(self._found().masters)

    @property
    def initial_replicas(self) -> list[Node]:
        return list(self._found().replicas)

    def initial_master_of(self, replica: Node) -> Node:
        return self.node_by_id(self._found().master_of[replica.node_id or ""])

    def form(self) -> None:
        raise UsageError("the harness never forms or alters an external cluster")

    def record(self, action: str, node: str, detail: str = "", *, ahead: bool = False) -> Event:
        ev = Event(time.monotonic_ns(), action, node, detail, time.time_ns())
        self.events.append(ev)
        return ev
