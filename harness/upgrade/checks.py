"""What is checked after every step of an upgrade, as the official procedures say to
verify (Redis "Upgrade a Redis cluster": ``INFO server``, ``CLUSTER INFO``,
``redis-cli --cluster check``; Valkey's tutorial: ``master_link_status:up`` and equal
offsets before a failover, ``ROLE``/``CLUSTER NODES`` after).

Each check polls until it holds or its bound passes (a cluster converges by gossip) and
ends as a :class:`Check`: ``ok``, ``fail`` with the last state seen, or ``unknown`` when
it cannot be asked (no ``CLUSTER SHARDS`` on any node, no server tool here). A check
never raises: a step's verdict is the list of its checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import redis

from harness.checkers import healthy
from harness.clitool import second_opinion
from harness.errors import HarnessError
from harness.topology import parse_cluster_shards, parse_info
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster

Status = Literal["ok", "fail", "unknown"]
Probe = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    ms: float = 0.0

    def describe(self) -> str:
        return f"{self.name}: {self.status} ({self.detail})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "ms": self.ms}


def polled(name: str, probe: Probe, bound: float) -> Check:
    """``probe`` until it holds (``ok``) or ``bound`` passes (``fail``, last state)."""
    t0 = time.monotonic()
    try:
        seen = wait_for(probe, bound, name)
    except HarnessError as exc:
        return Check(name, "fail", str(exc).splitlines()[0][:400], _ms(t0))
    return Check(name, "ok", str(seen)[:400], _ms(t0))


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def topology(cluster: Cluster, bound: float) -> Check:
    """Every slot covered, every live node agreeing on the map and roles, states ok, as
    ``CLUSTER NODES`` / ``CLUSTER INFO`` say (``CLUSTER SHARDS`` is its own check: in a
    mixed cluster it can be wrong while all else holds, and one wrong view should cost
    one check's wait, not two)."""

    def probe() -> tuple[bool, str]:
        verdict = healthy(cluster.snapshot(cluster.live_nodes(), with_shards=False))
        return verdict.ok, str(verdict)

    return polled("coverage-and-agreement", _tolerant(probe), bound)


def one_primary_per_shard(cluster: Cluster, bound: float) -> Check:
    """``CLUSTER SHARDS`` on every live node that has it: each shard with slots lists
    exactly one primary."""
    asked = [n for n in cluster.live_nodes() if n.impl.has("cluster_shards")]
    if not asked:
        return Check("one-primary-per-shard", "unknown", "no node has CLUSTER SHARDS")

    def probe() -> tuple[bool, str]:
        wrong = []
        for n in asked:
            shards = parse_cluster_shards(n.call("CLUSTER", "SHARDS"))  # type: ignore[arg-type]
            for s in shards:
                primaries = [x for x in s.nodes if x.role in ("master", "primary")]
                if s.slots and len(primaries) != 1:
                    wrong.append(f"{n.name}: shard {s.slots[0]} has {len(primaries)} primaries")
        return not wrong, "; ".join(wrong) or f"{len(asked)} nodes agree"

    return polled("one-primary-per-shard", _tolerant(probe), bound)


def replicas_synced(cluster: Cluster, bound: float) -> Check:
    """Every replica ``master_link_status:up`` with its offset at least what its
    primary's was when the check began (caught up, while the load goes on)."""

    def pairs() -> list[tuple[Node, Node]]:
        out = []
        for m in cluster.masters():
            out += [(r, m) for r in cluster.replicas_of(m) if r in cluster.live_nodes()]
        return out

    try:
        targets = {r.name: (r, m, _offset(m, "master_repl_offset")) for r, m in pairs()}
    except (redis.exceptions.RedisError, OSError, HarnessError) as exc:
        return Check("replicas-synced", "fail", f"cannot read the primaries' offsets: {exc}")
    if not targets:
        return Check("replicas-synced", "ok", "no replicas")

    def probe() -> tuple[bool, str]:
        behind = []
        for name, (r, m, want) in targets.items():
            info = parse_info(str(r.call("INFO", "replication")))
            link = info.get("master_link_status")
            have = int(info.get("slave_repl_offset", "-1"))
            if link != "up" or have < want:
                behind.append(f"{name} of {m.name}: link {link}, offset {have} < {want}")
        return not behind, "; ".join(behind) or f"{len(targets)} replicas up and caught up"

    return polled("replicas-synced", _tolerant(probe), bound)


def _offset(node: Node, field: str) -> int:
    return int(parse_info(str(node.call("INFO", "replication"))).get(field, "0"))


def versions(cluster: Cluster) -> tuple[Check, dict[str, str]]:
    """``INFO server`` of every live node against the version it was started as."""
    seen: dict[str, str] = {}
    wrong = []
    for n in cluster.live_nodes():
        try:
            info = parse_info(str(n.call("INFO", "server")))
        except (redis.exceptions.RedisError, OSError) as exc:
            wrong.append(f"{n.name}: {exc}")
            continue
        got = info.get("valkey_version") or info.get("redis_version", "?")
        seen[n.name] = got
        if got != n.impl.version_str:
            wrong.append(f"{n.name} runs {got}, expected {n.impl.version_str}")
    detail = "; ".join(wrong) or ", ".join(f"{k} {v}" for k, v in seen.items())
    return Check("versions", "fail" if wrong else "ok", detail), seen


def server_tool(cluster: Cluster) -> Check:
    """The server's own ``--cluster check`` (the CLI of the cluster's implementation)."""
    t0 = time.monotonic()
    try:
        verdict = second_opinion(cluster)
    except HarnessError as exc:
        return Check("cluster-check", "fail", str(exc).splitlines()[0][:400], _ms(t0))
    if verdict is None:
        return Check("cluster-check", "unknown", "no cluster tool for this server here")
    bad = verdict.covered is False or verdict.agree is False or bool(verdict.open_slots)
    return Check("cluster-check", "fail" if bad else "ok", verdict.describe()[:400], _ms(t0))


def _tolerant(probe: Probe) -> Probe:
    """A node that does not answer yet is "not yet", not a crash of the check."""

    def run() -> tuple[bool, str]:
        try:
            return probe()
        except (redis.exceptions.RedisError, OSError) as exc:
            return False, str(exc)

    return run
