"""Pure checkers: topology snapshot in, verdict out.

No checker talks to a server; each names the node, the slots and what differed, so a
failed assertion explains itself.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from harness import slotmap
from harness.crc16 import SLOTS
from harness.topology import NodeView, Snapshot, format_ranges


@dataclass(frozen=True)
class Verdict:
    """Result of one or more checks: ``ok`` and the problems found, one sentence each."""

    problems: tuple[str, ...] = ()
    checked: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            return "ok (" + ", ".join(self.checked) + ")"
        return "\n".join(self.problems)

    @staticmethod
    def combine(verdicts: Iterable[Verdict]) -> Verdict:
        problems: list[str] = []
        checked: list[str] = []
        for v in verdicts:
            problems.extend(v.problems)
            checked.extend(v.checked)
        return Verdict(tuple(problems), tuple(dict.fromkeys(checked)))


def slot_coverage(view: NodeView) -> Verdict:
    """Slot ranges of masters are disjoint, in bounds, and cover 0..16383 (computed on
    ranges, :mod:`harness.slotmap`: a poll of a large cluster checks every view)."""
    problems: list[str] = []
    claimed: list[tuple[int, int, str]] = []
    for n in view.nodes:
        for lo, hi in n.slots:
            if lo > hi or lo < 0 or hi >= SLOTS:
                problems.append(
                    f"{view.observer}: node {n.node_id[:8]} ({n.addr}) claims bad range {lo}-{hi}"
                )
                continue
            if not n.is_master:
                problems.append(
                    f"{view.observer}: replica {n.node_id[:8]} ({n.addr}) lists slots {lo}-{hi}"
                )
            claimed.append((lo, hi, n.node_id))
    missing = slotmap.complement((lo, hi) for lo, hi, _ in claimed)
    if missing:
        problems.append(
            f"{view.observer}: {slotmap.count(missing)} slots unassigned: {format_ranges(missing)}"
        )
    overlaps: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for lo, hi, holders in slotmap.claims(claimed):
        if len(holders) > 1:
            overlaps[holders].append((lo, hi))
    for claimants, ranges in sorted(overlaps.items(), key=lambda kv: kv[1][0]):
        who = ", ".join(i[:8] for i in claimants)
        problems.append(
            f"{view.observer}: slots {format_ranges(slotmap.merge(ranges))} claimed by several nodes: {who}"
        )
    return Verdict(tuple(problems), ("slot coverage",))


def agreement(snapshot: Snapshot) -> Verdict:
    """Every reachable node reports the same slot → owner map and the same membership."""
    views = snapshot.views
    if not views:
        return Verdict(("no node was reachable to compare",), ("agreement",))
    problems: list[str] = []
    ref = views[0]
    ref_members = {n.node_id for n in ref.nodes if not n.in_handshake}
    ref_roles = _roles(ref)
    for v in views[1:]:
        diff = slotmap.differences(v.owner_ranges, ref.owner_ranges)
        if diff:
            first, _, here, there = diff[0]
            ranges = slotmap.merge((lo, hi) for lo, hi, _, _ in diff)
            problems.append(
                f"{v.observer} disagrees with {ref.observer} on slots "
                f"{format_ranges(ranges)}: e.g. slot {first} owner "
                f"{_short(here)} vs {_short(there)}"
            )
        roles = _roles(v)
        differ = sorted(i for i in roles.keys() & ref_roles.keys() if roles[i] != ref_roles[i])
        if differ:
            i = differ[0]
            problems.append(
                f"{v.observer} and {ref.observer} disagree on the role of {len(differ)} node(s): "
                f"e.g. {i[:8]} is {roles[i]} vs {ref_roles[i]}"
            )
        members = {n.node_id for n in v.nodes if not n.in_handshake}
        if members != ref_members:
            only_here = ", ".join(sorted(i[:8] for i in members - ref_members)) or "-"
            only_ref = ", ".join(sorted(i[:8] for i in ref_members - members)) or "-"
            problems.append(
                f"{v.observer} knows other nodes than {ref.observer}: "
                f"only it knows [{only_here}], only {ref.observer} knows [{only_ref}]"
            )
    return Verdict(tuple(problems), ("agreement",))


def _roles(view: NodeView) -> dict[str, str]:
    return {
        n.node_id: f"replica of {n.master_id[:8]}" if n.is_replica and n.master_id else "master"
        for n in view.nodes
        if not n.in_handshake
    }


def _short(node_id: str | None) -> str:
    return node_id[:8] if node_id else "none"


def unique_epochs(view: NodeView) -> Verdict:
    """Masters that own slots have pairwise distinct config epochs."""
    by_epoch: dict[int, list[str]] = defaultdict(list)
    for n in view.nodes:
        if n.is_master and n.slots and not n.failed:
            by_epoch[n.config_epoch].append(f"{n.node_id[:8]} ({n.addr})")
    problems = tuple(
        f"{view.observer}: masters {', '.join(ids)} share config epoch {epoch}"
        for epoch, ids in sorted(by_epoch.items())
        if len(ids) > 1
    )
    return Verdict(problems, ("unique epochs",))


def replicas_follow_live_masters(view: NodeView) -> Verdict:
    """Each replica names a known, live master."""
    problems: list[str] = []
    nodes = view.by_id()
    for n in view.nodes:
        if not n.is_replica or n.failed:
            continue
        m = nodes.get(n.master_id or "")
        if m is None:
            problems.append(
                f"{view.observer}: replica {n.node_id[:8]} ({n.addr}) follows unknown node {n.master_id}"
            )
        elif not m.is_master:
            problems.append(
                f"{view.observer}: replica {n.node_id[:8]} ({n.addr}) follows {m.node_id[:8]} which is not a master"
            )
        elif m.failed:
            problems.append(
                f"{view.observer}: replica {n.node_id[:8]} ({n.addr}) follows failed master {m.node_id[:8]} ({m.addr})"
            )
    return Verdict(tuple(problems), ("replicas follow live masters",))


def info_consistent(view: NodeView) -> Verdict:
    """``CLUSTER INFO`` counters agree with the observer's own ``CLUSTER NODES`` map."""
    if not view.info:
        return Verdict((), ())
    problems: list[str] = []
    assigned = sum(n.slot_count for n in view.nodes if n.is_master)
    failed = sum(n.slot_count for n in view.nodes if n.is_master and n.failed)
    pfail = sum(n.slot_count for n in view.nodes if n.is_master and n.suspected)
    expect = {
        "cluster_slots_assigned": assigned,
        "cluster_slots_fail": failed,
        "cluster_slots_pfail": pfail,
        "cluster_slots_ok": assigned - failed - pfail,
        "cluster_known_nodes": len(view.nodes),
        "cluster_size": sum(1 for n in view.nodes if n.is_master and n.slots),
    }
    for key, want in expect.items():
        got = view.info.get(key)
        if got is not None and int(got) != want:
            problems.append(
                f"{view.observer}: CLUSTER INFO {key}={got} but CLUSTER NODES implies {want}"
            )
    max_epoch = max((n.config_epoch for n in view.nodes), default=0)
    cur = view.info.get("cluster_current_epoch")
    if cur is not None and int(cur) < max_epoch:
        problems.append(
            f"{view.observer}: cluster_current_epoch={cur} is below a node's config epoch {max_epoch}"
        )
    return Verdict(tuple(problems), ("info consistent",))


def state_ok(view: NodeView) -> Verdict:
    state = view.info.get("cluster_state")
    problems = () if state == "ok" else (f"{view.observer}: cluster_state is {state}",)
    return Verdict(problems, ("state ok",))


def shards_match_nodes(view: NodeView) -> Verdict:
    """``CLUSTER SHARDS`` (where supported) describes the same slots as ``CLUSTER NODES``:
    each shard's slots are owned, per ``CLUSTER NODES``, by exactly one node of that shard,
    listed there as master. (A failed ex-master may stay in its shard as "master"; that is
    not a disagreement.)"""
    if view.shards is None:
        return Verdict((), ())
    problems: list[str] = []
    owned = view.owner_ranges
    segs = slotmap.segments(owned)
    in_shards: list[tuple[int, int]] = []
    for shard in view.shards:
        if not shard.slots:
            continue
        bad = [(lo, hi) for lo, hi in shard.slots if lo > hi or lo < 0 or hi >= SLOTS]
        if bad:
            problems.append(
                f"{view.observer}: CLUSTER SHARDS lists bad slot range(s) {format_ranges(bad)}"
            )
            continue
        in_shards.extend(shard.slots)
        owner_ids: set[str | None] = set()
        for lo, hi in shard.slots:
            owner_ids |= slotmap.owners_within(segs, lo, hi)
        where = f"{view.observer}: CLUSTER SHARDS slots {format_ranges(sorted(shard.slots))}"
        if len(owner_ids) != 1 or None in owner_ids:
            who = ", ".join(sorted(_short(i) for i in owner_ids))
            problems.append(f"{where} belong to [{who}] in CLUSTER NODES, not to one node")
            continue
        owner = owner_ids.pop()
        member = next((n for n in shard.nodes if n.node_id == owner), None)
        if member is None:
            ids = ", ".join(n.node_id[:8] for n in shard.nodes)
            problems.append(
                f"{where}: owner {_short(owner)} per CLUSTER NODES is not in the shard [{ids}]"
            )
        elif member.role not in ("master", "primary"):
            problems.append(f"{where}: owner {_short(owner)} is listed with role {member.role}")
    # every slot CLUSTER NODES assigns must appear in some shard
    listed = slotmap.merge(in_shards)
    absent: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for lo, hi, owner in owned:
        absent[owner].extend(slotmap.subtract([(lo, hi)], listed))
    for owner, ranges in absent.items():
        if ranges:
            problems.append(
                f"{view.observer}: slots {format_ranges(slotmap.merge(ranges))} of {owner[:8]} are assigned in "
                "CLUSTER NODES but absent from CLUSTER SHARDS"
            )
    return Verdict(tuple(problems), ("shards match nodes",))


PER_VIEW: tuple[Callable[[NodeView], Verdict], ...] = (
    slot_coverage,
    unique_epochs,
    replicas_follow_live_masters,
    info_consistent,
    shards_match_nodes,
)


def healthy(snapshot: Snapshot, *, require_all_reachable: bool = True) -> Verdict:
    """All topology checks over every reachable node, plus agreement between them."""
    verdicts = [agreement(snapshot)]
    for v in snapshot.views:
        verdicts.append(state_ok(v))
        verdicts.extend(check(v) for check in PER_VIEW)
    if require_all_reachable and snapshot.unreachable:
        verdicts.append(
            Verdict(
                tuple(f"{a} unreachable: {e}" for a, e in snapshot.unreachable.items()),
                ("reachable",),
            )
        )
    return Verdict.combine(verdicts)
