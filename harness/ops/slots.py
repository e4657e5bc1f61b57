"""What state a slot is in, precisely: who owns it as each node sees it, which nodes
have it open for a migration, and where its keys are.

Gathering (:func:`inspect_slots`: ``CLUSTER NODES`` and ``CLUSTER COUNTKEYSINSLOT`` on
every live node) is separate from the judgement (:func:`slot_reports`, pure), so the
rules about what counts as open or hidden are unit-tested on recorded replies.

The open markers are those ``CLUSTER NODES`` prints on a node's own line:
``[slot->-id]`` (migrating to ``id``) and ``[slot-<-id]`` (importing from ``id``).
A *hidden* key is one held by a node that neither owns the slot, nor imports it, nor
replicates a master that does: no client is ever sent there for it, so it is lost to
readers although it exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from harness.errors import HarnessError
from harness.topology import NodeView

if TYPE_CHECKING:
    from harness.cluster import Cluster


@dataclass(frozen=True)
class SlotReport:
    """One slot across the cluster. Every mapping is keyed by the node id of the node
    that answered; ``names`` gives each id's address for messages."""

    slot: int
    #: owner id as each node sees it (None: unassigned in that node's view)
    owner: Mapping[str, str | None]
    #: node -> id of the node it migrates the slot to (its own ``[slot->-id]`` marker)
    migrating: Mapping[str, str]
    #: node -> id of the node it imports the slot from (its own ``[slot-<-id]`` marker)
    importing: Mapping[str, str]
    #: node -> ``CLUSTER COUNTKEYSINSLOT`` on that node
    keys: Mapping[str, int]
    #: node -> keys it holds while it neither owns, imports nor replicates a holder
    hidden: Mapping[str, int]
    names: Mapping[str, str] = field(default_factory=dict)
    #: nodes that did not answer, by address, with why
    unreachable: Mapping[str, str] = field(default_factory=dict)

    @property
    def owners(self) -> set[str | None]:
        """The distinct owners the nodes name."""
        return set(self.owner.values())

    @property
    def agreed_owner(self) -> str | None:
        """The owner every answering node names, or None if they differ (or none does)."""
        owners = self.owners
        return owners.pop() if len(owners) == 1 else None

    @property
    def is_open(self) -> bool:
        return bool(self.migrating or self.importing)

    @property
    def total_keys(self) -> int:
        """Keys on the nodes that hold them for clients (owners, importers, their
        replicas count too: a replica's copy is a copy, not a key more)."""
        return sum(self.keys.values())

    def keys_on(self, node_id: str) -> int:
        return self.keys.get(node_id, 0)

    def settled(self, owner_id: str) -> bool:
        """Every answering node names ``owner_id``, nothing is open, no key is hidden."""
        return self.agreed_owner == owner_id and not self.is_open and not self.hidden

    def name(self, node_id: str | None) -> str:
        if node_id is None:
            return "nobody"
        return self.names.get(node_id, node_id[:8])

    def describe(self) -> str:
        """``slot 7: owner A per 5 nodes, B per C; open: A migrating to B; keys: A=3 B=2;
        hidden: C=1``: one line that says what a failed operation left."""
        by_owner: dict[str | None, list[str]] = {}
        for observer, owner in self.owner.items():
            by_owner.setdefault(owner, []).append(observer)
        owners = "; ".join(
            f"{self.name(o)} per {len(obs)} node(s)"
            if len(by_owner) == 1 or len(obs) > 2
            else f"{self.name(o)} per {', '.join(self.name(x) for x in obs)}"
            for o, obs in sorted(by_owner.items(), key=lambda kv: -len(kv[1]))
        )
        parts = [f"slot {self.slot}: owner {owners or 'unknown (no node answered)'}"]
        opened = [f"{self.name(a)} migrating to {self.name(b)}" for a, b in self.migrating.items()]
        opened += [
            f"{self.name(a)} importing from {self.name(b)}" for a, b in self.importing.items()
        ]
        parts.append("open: " + ", ".join(opened) if opened else "not open")
        held = [f"{self.name(n)}={k}" for n, k in sorted(self.keys.items()) if k]
        parts.append(f"keys: {' '.join(held)}" if held else "keys: none")
        if self.hidden:
            parts.append(
                "hidden: " + " ".join(f"{self.name(n)}={k}" for n, k in self.hidden.items())
            )
        if self.unreachable:
            parts.append("unreachable: " + ", ".join(self.unreachable))
        return "; ".join(parts)


class MigrationError(HarnessError):
    """An operation on slots or members that did not complete, with the
    :class:`SlotReport` of each slot involved: the message says which slot, how many keys
    each node holds and what is left open."""

    SHOWN = 8  # reports in the message; all of them stay in ``reports``

    def __init__(self, message: str, reports: Sequence[SlotReport] = ()) -> None:
        self.message = message
        self.reports = list(reports)
        text = message + "".join(f"\n  {r.describe()}" for r in self.reports[: self.SHOWN])
        if len(self.reports) > self.SHOWN:
            text += f"\n  (+{len(self.reports) - self.SHOWN} more slots)"
        super().__init__(text)


def slot_reports(
    views: Sequence[NodeView],
    counts: Mapping[str, Mapping[int, int]],
    slots: Iterable[int],
    unreachable: Mapping[str, str] | None = None,
) -> list[SlotReport]:
    """Judge ``slots`` from each node's view and key counts (``counts``: node id ->
    slot -> COUNTKEYSINSLOT). Pure."""
    mine = [(v, v.myself) for v in views]
    me = {e.node_id: (v, e) for v, e in mine if e is not None}
    names = {e.node_id: e.addr for v in views for e in v.nodes}
    owners_by_view = {nid: v.slot_owners() for nid, (v, _) in me.items()}
    out = []
    for slot in slots:
        owner = {nid: owners_by_view[nid][slot] for nid in me}
        migrating = {nid: t for nid, (_, e) in me.items() for s, t in e.migrating if s == slot}
        importing = {nid: f for nid, (_, e) in me.items() for s, f in e.importing if s == slot}
        keys = {nid: int(counts.get(nid, {}).get(slot, 0)) for nid in me}

        # who holds the slot for clients: it owns or imports it, by its own view
        serving = {nid for nid in me if owner[nid] == nid or nid in importing}
        hidden = {}
        for nid, k in keys.items():
            if not k or nid in serving:
                continue
            master = me[nid][1].master_id
            if master is not None and (owner[nid] == master or master in serving):
                continue  # a replica's copy of its master's keys
            hidden[nid] = k
        out.append(
            SlotReport(
                slot, owner, migrating, importing, keys, hidden, names, dict(unreachable or {})
            )
        )
    return out


def inspect_slots(cluster: Cluster, slots: Iterable[int] | int) -> list[SlotReport]:
    """Ask every live node for its map and its key count of each slot, and judge them."""
    wanted = [slots] if isinstance(slots, int) else list(slots)
    views: list[NodeView] = []
    counts: dict[str, dict[int, int]] = {}
    unreachable: dict[str, str] = {}
    for node in cluster.live_nodes():
        try:
            view = cluster.view(node, with_shards=False)
            with node.client(timeout=5.0) as c:
                pipe = c.pipeline(transaction=False)
                for s in wanted:
                    pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", s)
                got = pipe.execute()
        except (redis.exceptions.RedisError, OSError, HarnessError) as exc:
            unreachable[node.addr] = f"{type(exc).__name__}: {exc}"
            continue
        views.append(view)
        if view.myself is not None:
            counts[view.myself.node_id] = {s: int(n) for s, n in zip(wanted, got, strict=True)}
    return slot_reports(views, counts, wanted, unreachable)
