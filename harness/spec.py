"""What a cluster under test looks like: :class:`ClusterSpec` and the slot split.

The fields, their defaults and their checks come from the option table
(:mod:`harness.options`, the ``marker`` layer), shared with the CLI and the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from harness.backends import NodeConfig
from harness.backends.base import Persistence
from harness.crc16 import SLOTS
from harness.errors import UsageError
from harness.options import MARKER_FIELDS, OPTION, check_fields
from harness.security import Auth, SecuritySpec

Formation = Literal["commands", "redis-cli"]


@dataclass(frozen=True)
class ClusterSpec:
    """Shape and settings of a cluster (what ``@pytest.mark.cluster`` configures)."""

    masters: int = OPTION["masters"].default
    replicas: int = OPTION["replicas"].default  # per master
    node_timeout_ms: int = OPTION["node_timeout_ms"].default
    persistence: Persistence = OPTION["persistence"].default
    server_args: tuple[tuple[str, str], ...] = OPTION["server_args"].default
    ready_timeout_s: float = OPTION["ready_timeout_s"].default
    #: local backend: run in a namespace so links can be cut
    network_faults: bool = OPTION["network_faults"].default
    #: every client and bus link goes through a Toxiproxy proxy
    proxied: bool = OPTION["proxied"].default
    #: who may talk to the nodes (harness.security): none, password, acl
    auth: Auth = OPTION["auth"].default
    #: the password of auth="password"/"acl" (None: a fresh one); alone, auth="password"
    password: str | None = field(default=OPTION["password"].default, repr=False)
    #: TLS on client connections, replication and the cluster bus
    tls: bool = OPTION["tls"].default
    #: "commands" (the harness forms it) or "redis-cli" (the server's own tool does)
    formation: Formation = OPTION["formation"].default

    def __post_init__(self) -> None:
        check_fields({f.name: getattr(self, f.name) for f in fields(self)})
        if self.formation == "redis-cli" and self.masters < 3:  # the tool's own rule
            raise UsageError(
                f"formation='redis-cli': redis-cli --cluster create needs at least 3 masters, "
                f"got masters={self.masters}"
            )
        if self.password is not None and self.auth == "none":  # a password alone
            object.__setattr__(self, "auth", "password")

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas)

    @property
    def security(self) -> SecuritySpec:
        return SecuritySpec(self.auth, self.password, self.tls)

    def node_config(self) -> NodeConfig:
        return NodeConfig(
            self.node_timeout_ms, self.persistence, dict(self.server_args), self.security
        )

    def failover_bound_ms(self) -> int:
        """A defensible upper bound for an automatic failover (see the facts notes):
        FAIL detection within 2·NT, election delay ≤ 2 s, plus 1 s per extra replica rank."""
        return 2 * self.node_timeout_ms + 2000 + 1000 * max(0, self.replicas - 1)


if {f.name for f in fields(ClusterSpec)} != MARKER_FIELDS:  # the table and the fields agree
    raise AssertionError(
        f"ClusterSpec fields differ from the marker options {sorted(MARKER_FIELDS)}"
    )


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Even split of the 16384 slots, as ``redis-cli --cluster create`` does."""
    per = SLOTS / masters
    return [(round(i * per), round((i + 1) * per) - 1) for i in range(masters)]
