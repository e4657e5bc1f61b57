"""A migration a fault interrupts midway, and the waits around it.

:class:`Interrupted` fills a slot with known keys (none of the workload's), opens its
migration and moves some batches, writes every key once more through the redirections,
then judges the cluster after the fault against the specification's contract: keys
already moved on the target side, the others on the source side, and every
acknowledged value readable by a client following ``MOVED``/``ASK``. A slot left
unreachable is reported with the phrase of its known issue (:data:`UNREACHABLE`), apart
from any other problem, so a known server bug never hides another failure.
"""

from __future__ import annotations

from harness import Cluster
from harness.backends import Node
from harness.checkers import check_set
from harness.crc16 import SLOTS, key_slot
from harness.errors import NotReadyError
from harness.ops import SlotMigration, SlotReport, inspect_slots
from harness.scenario import Outcome
from harness.topology import parse_info
from harness.wait import Hopeless, wait_for

from ._repair import BEFORE, DURING, fill_slot, keys_on, unreadable, write_during
from ._scaling import first_free_slot, owned_slots

FILL = 40  # keys in the slot that a fault interrupts
BATCH = 15  # so the fault finds some keys moved and some not
#: the phrase of the known issue (fixtures/implementations.toml): keys moved before a
#: failover mid-migration that a client cannot read until an operator repairs the slot
UNREACHABLE = "unreachable after the failover mid-migration"
#: the phrase of the known issue of a replica that keeps a finished migration open
OPEN_ON_REPLICA = "stays open on the replica"
#: the phrase of the known issue of an old master that, restarted, takes its shard back
TAKEN_BACK = "took its shard back from the promoted replica"


def wait_state_ok(cluster: Cluster, node: Node) -> None:
    """Until ``node`` says ``cluster_state:ok``: a master that has just started keeps it
    ``fail`` for its first 2 s (the servers' writable delay) and answers ``CLUSTERDOWN``
    meanwhile, to a ``MIGRATE``'s ``RESTORE-ASKING`` too."""
    wait_for(
        lambda: (
            (state := parse_info(str(node.call("CLUSTER", "INFO"))).get("cluster_state")) == "ok",
            state,
        ),
        cluster.recovery_s(),
        f"{node.addr} cluster_state:ok",
    )


def open_only_on(report: SlotReport, node: Node, owner: Node) -> bool:
    """Is ``report``'s slot settled on ``owner`` but for an open marker of ``node``?"""
    marked = set(report.migrating) | set(report.importing)
    return marked == {node.node_id} and report.agreed_owner == owner.node_id and not report.hidden


def unsettled(cluster: Cluster, slots: list[int], owner: Node) -> list[SlotReport]:
    """The reports of ``slots`` not settled on ``owner`` on every live node (replicas
    too: named owner, nothing open, no key hidden) once the cluster's recovery bound
    has passed without their settling; empty as soon as all are."""
    last: list[SlotReport] = []

    def settled() -> tuple[bool, str]:
        last[:] = [r for r in inspect_slots(cluster, slots) if not r.settled(owner.node_id or "")]
        return not last, "\n  ".join(r.describe() for r in last)

    try:
        wait_for(settled, cluster.recovery_s(), f"slots settled on {owner.addr} on every node")
    except NotReadyError:
        return last
    return []


class Interrupted:
    """A migration of a filled slot that a fault interrupts: what had moved when it
    struck, and what the cluster looked like after it (for the verdict)."""

    def __init__(self, cluster: Cluster, source: Node, target: Node, busy: frozenset[int]) -> None:
        self.slot = first_free_slot(owned_slots(cluster, source), busy)
        self.keys = fill_slot(cluster, source, self.slot, FILL)
        self.migration = SlotMigration(cluster, self.slot, source, target, batch=BATCH)
        self.source = source
        self.target = target
        self.moved: set[str] = set()
        self.left: set[str] = set()
        self.problems: list[str] = []
        self.unreachable: list[str] = []
        self.taken_back: list[str] = []
        self.taken_slots: frozenset[int] = frozenset()

    def start(self, cluster: Cluster, batches: int = 2) -> None:
        """Open, move ``batches`` batches, write every key once more through the
        redirections (moved keys on the target, after ``ASK``)."""
        self.migration.open()
        for _ in range(batches):
            self.migration.move_batch()
        self.moved = keys_on(self.target, self.slot)
        self.left = keys_on(self.source, self.slot)
        assert self.moved and self.left, f"moved {len(self.moved)}, left {len(self.left)}"
        write_during(cluster, self.keys)

    def expected(self) -> dict[str, frozenset[str]]:
        return {k: frozenset({BEFORE, DURING}) for k in self.keys}

    def judge_after_failover(
        self, cluster: Cluster, source_side: Node, target_side: Node
    ) -> list[str]:
        """The specification's contract once a replica took over: moved keys on the
        target side, the others on the source side; then whether a client reads them."""
        report = inspect_slots(cluster, self.slot)[0]
        notes = [f"after the failover: {report.describe()}"]
        on_target = keys_on(target_side, self.slot)
        on_source = keys_on(source_side, self.slot)
        if on_target != self.moved:
            self.problems.append(
                f"slot {self.slot}: {len(self.moved)} keys had moved, {target_side.addr} "
                f"holds {len(on_target)}; missing {sorted(self.moved - on_target)[:5]}"
            )
        if on_source != self.left:
            self.problems.append(
                f"slot {self.slot}: {len(self.left)} keys had not moved, {source_side.addr} "
                f"holds {len(on_source)}; missing {sorted(self.left - on_source)[:5]}"
            )
        down = [
            n.addr
            for n in cluster.live_nodes()
            if parse_info(str(n.call("CLUSTER", "INFO"))).get("cluster_state") != "ok"
        ]
        if down:
            notes.append(f"cluster_state not ok on {', '.join(down)}")
        bad = unreadable(cluster, self.expected())
        if bad:
            moved_bad = sum(1 for r in bad if r.key in self.moved)
            self.unreachable.append(
                f"slot {self.slot}: {len(bad)} keys ({moved_bad} of the {len(self.moved)} "
                f"moved) {UNREACHABLE}, e.g. {bad[0].key!r}: {_got(bad[0].members)} via "
                f"{bad[0].route}; "
                f"{report.describe()}"
                + (f"; cluster_state fail on {', '.join(down)}" if down else "")
            )
        return notes

    def judge_repaired(self, cluster: Cluster) -> list[str]:
        report = inspect_slots(cluster, self.slot)[0]
        if report.is_open or report.hidden or report.agreed_owner is None:
            self.problems.append(f"after the repair: {report.describe()}")
        bad = unreadable(cluster, self.expected())
        if bad:
            self.problems.append(
                f"after the repair {len(bad)} keys lack acknowledged values, e.g. "
                f"{bad[0].key!r}: {bad[0].members} via {bad[0].route}"
            )
        return [f"after the repair: {report.describe()}"]

    def rejoin(self, cluster: Cluster, node: Node, heir: Node, other: Node) -> list[str]:
        """Start the killed ``node`` again; wait until it is a synced replica of a node
        that took its slots (specification, "How nodes rejoin the cluster": of the one
        that took its last slot, ``heir`` or ``other``). If instead ``heir`` becomes *its*
        replica, ``node`` took its shard back: recorded, with what each holds."""
        held = cluster.view(heir, with_shards=False).myself
        epoch = held.config_epoch if held is not None else "?"
        cluster.faults.start(node)

        def rejoined() -> tuple[bool, str]:
            me = cluster.view(heir, with_shards=False).myself
            if me is not None and me.master_id == node.node_id:
                raise Hopeless(f"{heir.addr} now replicates {node.addr}")
            seen = [cluster.probe_replica_of(node, t) for t in (heir, other)]
            return any(ok for ok, _ in seen), seen[0][1]

        try:
            wait_for(rejoined, cluster.recovery_s(), f"{node.addr} back as a replica")
        except Hopeless:
            self.taken_slots = frozenset(owned_slots(cluster, node))
            mine = cluster.view(node, with_shards=False).myself
            self.taken_back.append(
                f"{node.addr}, restarted, {TAKEN_BACK} {heir.addr}: it owns "
                f"{len(self.taken_slots)} slots at config epoch "
                f"{mine.config_epoch if mine else '?'} (the promoted replica had {epoch}), and "
                f"{heir.addr} resynced from it: {node.call('DBSIZE')} keys on it, "
                f"{heir.call('DBSIZE')} on {heir.addr}"
            )
            return self.taken_back[-1:]
        return []

    def assert_held(self, outcome: Outcome, text: str) -> None:
        """Every problem fails the test. A known issue alone (a slot left unreachable, a
        shard taken back and the losses on its slots alone) fails it with the issue's
        phrase; with anything else the phrases are left out, so an issue never excuses
        another failure."""
        quiet = [
            u.replace(UNREACHABLE, "unreadable after the failover").replace(TAKEN_BACK, "took over")
            for u in [*self.unreachable, *self.taken_back]
        ]
        if not self.taken_back:
            assert outcome.valid == "valid", "\n".join([text, *quiet])
        else:
            r = check_set(outcome.history, examples=SLOTS * 100)  # every loss, not examples
            lost = [e for s in r.lost.values() for e in s.examples]
            elsewhere = [e.describe() for e in lost if key_slot(e.key) not in self.taken_slots]
            if r.unexpected_count or r.failed_present_count:
                elsewhere.append("values never added, or added by failed writes, were read")
            others = [
                x.describe()
                for n, x in outcome.results.items()
                if n != "set" and x.valid == "invalid"
            ]
            assert not elsewhere and not others, "\n".join([*elsewhere[:5], *others, text, *quiet])
            self.taken_back.append(f"{len(lost)} acknowledged adds lost, all on the slots it took")
        assert not self.problems, "\n".join([*self.problems, *quiet, text])
        assert not self.unreachable, "\n".join([*self.unreachable, text])
        assert not self.taken_back, "\n".join([*self.taken_back, text])


def _got(members: frozenset[str] | None) -> str:
    return "no answer" if members is None else f"read {sorted(members)}"


def probe_slot(cluster: Cluster, master: Node, avoid: set[int]) -> int:
    return first_free_slot(owned_slots(cluster, master), frozenset(avoid))
