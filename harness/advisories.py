"""Advisories: what the Redis Cluster documents advise operators about a cluster's
shape, checked on a topology. Pure functions; never a failure (a test on a 2-master
cluster is a fine test), said once in the terminal summary and in ``summary.json``.

The sources are the Redis Cluster tutorial ("Scale with Redis Cluster",
docs/management/scaling.md of redis/redis-doc) and the Redis Cluster specification
(docs/reference/cluster-spec.md). Each advisory names its source and quotes it; where the
advice is this harness's inference from the quoted rule rather than the document's own
words, :data:`SOURCES` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.topology import NodeEntry, NodeView

EVEN_MASTERS = "even-masters"
REPLICAS_ON_MASTER_HOST = "replicas-on-master-host"
FEW_STARTUP_NODES = "few-startup-nodes"

#: where each advisory comes from, quoted
SOURCES: dict[str, str] = {
    EVEN_MASTERS: (
        "Redis Cluster specification, Overview: 'Redis Cluster is able to survive "
        "partitions where the majority of the master nodes are reachable'; a FAIL flag "
        "needs the reports of 'a majority of masters' and a replica wins its election "
        "with 'ACKs from the majority of masters'. Neither the specification nor the "
        "tutorial says 'odd number of masters' in those words: the advice is this "
        "harness's inference from the majority rule"
    ),
    REPLICAS_ON_MASTER_HOST: (
        "Redis Cluster tutorial, master-replica model: 'if nodes B and B1 fail at the "
        "same time, Redis Cluster will not be able to continue to operate' (redis-cli "
        "--cluster create places replicas on other hosts than their master for this "
        "reason: anti-affinity)"
    ),
    FEW_STARTUP_NODES: (
        "Redis Cluster tutorial, example app: 'The startup nodes don't need to be all the "
        "nodes of the cluster. The important thing is that at least one node is "
        "reachable.' Fewer startup nodes than masters is this harness's threshold for "
        "'at least one reachable' to stay likely when hosts fail"
    ),
}

#: why the local backend is never told about replicas on their master's host
LOCAL_HOSTS_NOTE = (
    "the local backend runs every node on this one machine (127.0.0.1, or one namespace "
    "address each) by design: replica placement across hosts does not apply there"
)


@dataclass(frozen=True)
class Advisory:
    """One piece of advice about one cluster: ``code`` (stable, for tools), the sentence
    people read, and where the document says it (:data:`SOURCES`)."""

    code: str
    message: str

    @property
    def source(self) -> str:
        return SOURCES[self.code]

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def majority(masters: int) -> int:
    return masters // 2 + 1


def even_masters(masters: int) -> Advisory | None:
    """An even number of masters (2 or more) tolerates no more lost masters than one
    master fewer, and a split into two halves leaves no majority on either side."""
    if masters < 2 or masters % 2:
        return None
    tolerated = masters - majority(masters)
    return Advisory(
        EVEN_MASTERS,
        f"{masters} masters: failure detection and replica elections need a majority of "
        f"masters ({majority(masters)} of {masters}), so this cluster survives the loss of "
        f"{tolerated} master(s), as {masters - 1} would, and a partition into two halves "
        f"of {masters // 2} leaves neither side a majority: run an odd number of masters",
    )


def replicas_on_master_host(view: NodeView) -> Advisory | None:
    """Masters whose every replica has the master's own address host: one host failure
    takes the master and all its replicas (the tutorial's "B and B1 fail at the same
    time"). Only meaningful where addresses are hosts: not on the local backend
    (:data:`LOCAL_HOSTS_NOTE`) nor behind proxies."""
    entries = [e for e in view.nodes if not e.in_handshake]
    lonely: list[str] = []
    for m in entries:
        if not (m.is_master and m.slots and not m.failed):
            continue
        replicas = [e for e in entries if e.master_id == m.node_id and not e.failed]
        if replicas and all(_host(r) == _host(m) for r in replicas):
            lonely.append(f"{m.addr} ({len(replicas)} replica(s))")
    if not lonely:
        return None
    shown = ", ".join(lonely[:5]) + (f" (+{len(lonely) - 5} more)" if len(lonely) > 5 else "")
    return Advisory(
        REPLICAS_ON_MASTER_HOST,
        f"{len(lonely)} master(s) have every replica on their own host: {shown}; losing "
        "that host loses the master and all its replicas at once, and its slots stay down: "
        "place replicas on other hosts",
    )


def startup_nodes(seeds: int, masters: int) -> Advisory | None:
    """A client configuration with fewer startup nodes than the cluster has masters."""
    if seeds >= masters:
        return None
    return Advisory(
        FEW_STARTUP_NODES,
        f"{seeds} startup node(s) for {masters} masters: a client needs one reachable "
        "startup node to find the cluster, so if the hosts of these fail it cannot start, "
        "though the cluster still serves: give clients at least one node per master",
    )


def _host(e: NodeEntry) -> str:
    return e.hostname or e.host


def masters_of(view: NodeView) -> int:
    """Masters that own slots, as ``view`` sees them (failed ones included: they still
    count towards the majority until they are replaced)."""
    return sum(1 for e in view.nodes if e.is_master and e.slots)


def for_cluster(
    view: NodeView, *, hosts_meaningful: bool, seeds: int | None = None
) -> list[Advisory]:
    """Every advisory about the cluster ``view`` describes. ``hosts_meaningful``: node
    addresses stand for hosts (docker, an external cluster), not for one machine
    (the local backend) or for proxies. ``seeds``: how many startup nodes a client
    configuration names, if one was given."""
    masters = masters_of(view)
    found: Sequence[Advisory | None] = (
        even_masters(masters),
        replicas_on_master_host(view) if hosts_meaningful else None,
        startup_nodes(seeds, masters) if seeds is not None else None,
    )
    return [a for a in found if a is not None]
