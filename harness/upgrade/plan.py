"""Upgrade plans as data: the steps of a rolling upgrade, in the documented order, that
can be printed before anything runs (:meth:`Plan.render`) and are then carried out one
by one (:mod:`harness.upgrade.rehearse`).

- ``in-place``: per shard, restart each replica on the new binary with its own data
  directory and ``nodes.conf``; then ``CLUSTER FAILOVER`` to an upgraded replica; then
  the demoted old primary, at once: it is now a replica of a newer primary, which it
  cannot resync from across an RDB format bump, and must not be promoted meanwhile. A
  shard without replicas can only restart its primary (unavailable meanwhile, and empty
  afterwards without persistence). Redis "Upgrade a Redis cluster"; Valkey cluster
  tutorial.
- ``replace``: per shard, add a new-version replica per old node, wait until each is
  synced, ``CLUSTER FAILOVER`` to one, then remove the old nodes (Valkey cluster
  tutorial: "add upgraded nodes as replicas ... failover ... retire the old primary").

Two deliberately unsafe plans show what the checks catch: ``in-place-primaries-first``
(the primary restarts first: without persistence it comes back empty and its replicas
resync the empty dataset) and ``replace-unsynced`` (the new replica takes over with
``CLUSTER FAILOVER TAKEOVER`` before its first sync could finish).

Pure data: no I/O, so a plan can be printed, compared and unit-tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PlanKind = Literal["in-place", "replace", "in-place-primaries-first", "replace-unsynced"]
PLANS: dict[str, str] = {
    "in-place": "restart every node on the new binary with its own files: replicas, "
    "then a failover to an upgraded replica, then the old primary",
    "replace": "add a new-version replica per node, wait for its sync, fail over to "
    "one, remove the old nodes",
    "in-place-primaries-first": "UNSAFE on purpose: restart each primary first, then "
    "its replicas (no failover)",
    "replace-unsynced": "UNSAFE on purpose: add a new-version replica and take over "
    "(CLUSTER FAILOVER TAKEOVER) before its first sync can finish",
}
SAFE_PLANS: tuple[PlanKind, ...] = ("in-place", "replace")
UNSAFE_PLANS: tuple[PlanKind, ...] = ("in-place-primaries-first", "replace-unsynced")

Action = Literal[
    "upgrade-replica", "upgrade-primary", "failover", "takeover", "add-replica", "remove-node"
]
#: what each action does, for the printed plan
ACTIONS: dict[str, str] = {
    "upgrade-replica": "stop the replica, start it on the new binary with its files; wait "
    "until it is a synced replica again",
    "upgrade-primary": "stop the primary, start it on the new binary with its files; wait "
    "until it serves its slots again (the shard is unavailable meanwhile)",
    "failover": "CLUSTER FAILOVER on an upgraded replica: it catches up, then takes over; "
    "wait until every node agrees",
    "takeover": "CLUSTER FAILOVER TAKEOVER on the new replica at once, synced or not",
    "add-replica": "start a new-version node, CLUSTER MEET, CLUSTER REPLICATE the shard's "
    "primary; wait until it is synced",
    "remove-node": "CLUSTER FORGET the old node on every other node, stop it",
}


@dataclass(frozen=True)
class Shard:
    """A shard as the plan sees it: node names (``n0``...) of its primary and replicas."""

    primary: str
    replicas: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One step. ``node`` names an existing node (``n3``) or one the plan adds
    (``new-1-0``: shard 1's first new node), known by that name until it exists."""

    index: int
    action: Action
    shard: int
    node: str
    detail: str = ""
    #: ``add-replica``: wait for the first sync (False only in ``replace-unsynced``)
    sync: bool = True

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.index:>2}. shard {self.shard}: {self.action} {self.node}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "action": self.action,
            "shard": self.shard,
            "node": self.node,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Plan:
    kind: PlanKind
    source: str  # what runs now, e.g. "redis 7.0.15"
    target: str
    shards: tuple[Shard, ...]
    steps: tuple[Step, ...]
    #: what can be foreseen before anything runs (e.g. a replica that cannot resync)
    notes: tuple[str, ...] = field(default=())

    @property
    def safe_by_design(self) -> bool:
        return self.kind in SAFE_PLANS

    def render(self) -> str:
        """The plan as an operator reads it before the change window."""
        head = f"upgrade plan {self.kind}: {self.source} -> {self.target}, " + (
            f"{len(self.shards)} shards, {len(self.steps)} steps"
        )
        lines = [head, f"  {PLANS[self.kind]}"]
        lines += [f"  {s.describe()}" for s in self.steps]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "shards": [{"primary": s.primary, "replicas": list(s.replicas)} for s in self.shards],
            "steps": [s.to_json() for s in self.steps],
            "notes": list(self.notes),
        }


def make_plan(
    kind: PlanKind,
    shards: Sequence[Shard],
    *,
    source: str,
    target: str,
    persistence: str = "none",
    replica_can_sync_from_target: bool | None = True,
) -> Plan:
    """The steps of ``kind`` for ``shards``. ``replica_can_sync_from_target``: whether a
    node still on the source version can replicate from one on the target (False across
    an RDB format bump: :func:`harness.upgrade.risks.can_replicate`), said in the notes."""
    if kind not in PLANS:
        raise ValueError(f"unknown plan {kind!r}; known: {', '.join(PLANS)}")
    steps: list[tuple[Action, int, str, str, bool]] = []
    notes: list[str] = []
    for i, shard in enumerate(shards):
        if kind == "in-place":
            steps += _in_place(i, shard)
            if not shard.replicas:
                loses = (
                    "and, without persistence, empty afterwards" if persistence == "none" else ""
                )
                notes.append(
                    f"shard {i} has no replica: its primary {shard.primary} restarts in "
                    f"place, unavailable meanwhile {loses}".rstrip()
                )
        elif kind == "in-place-primaries-first":
            steps.append(("upgrade-primary", i, shard.primary, "first, while it is primary", True))
            steps += [("upgrade-replica", i, r, "", True) for r in shard.replicas]
        else:
            steps += _replace(i, shard, sync=kind == "replace")
    if replica_can_sync_from_target is False and kind in ("in-place", "in-place-primaries-first"):
        notes.append(
            f"a {source} replica cannot take a full sync from a {target} primary (RDB "
            "format; it flushes its data first): after each failover the demoted primary "
            "resyncs partially, but a restart or a backlog overrun needs a full sync, so "
            "it is upgraded next and must not be promoted before"
        )
    if replica_can_sync_from_target is False and kind == "in-place-primaries-first":
        notes.append("the replicas of an upgraded primary cannot sync until upgraded")
    numbered = tuple(Step(n + 1, *s) for n, s in enumerate(steps))
    return Plan(kind, source, target, tuple(shards), numbered, tuple(notes))


def _in_place(i: int, shard: Shard) -> list[tuple[Action, int, str, str, bool]]:
    if not shard.replicas:
        return [("upgrade-primary", i, shard.primary, "no replica to fail over to", True)]
    first = shard.replicas[0]
    return [
        *[("upgrade-replica", i, r, f"replica of {shard.primary}", True) for r in shard.replicas],
        ("failover", i, first, f"takes over from {shard.primary}", True),
        ("upgrade-replica", i, shard.primary, f"demoted, now a replica of {first}", True),
    ]


def _replace(i: int, shard: Shard, *, sync: bool) -> list[tuple[Action, int, str, str, bool]]:
    old = [shard.primary, *shard.replicas]
    new = [f"new-{i}-{k}" for k in range(len(old) if sync else 1)]
    adds: list[tuple[Action, int, str, str, bool]] = [
        (
            "add-replica",
            i,
            n,
            f"replica of {shard.primary}" + ("" if sync else ", not synced"),
            sync,
        )
        for n in new
    ]
    over: Action = "failover" if sync else "takeover"
    return [
        *adds,
        (over, i, new[0], f"takes over from {shard.primary}", True),
        *[("remove-node", i, o, "old version", True) for o in old],
    ]
