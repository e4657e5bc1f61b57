"""harness.checkers: verdicts on hand-made topology snapshots (healthy and broken)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest

from harness.checkers.topology import (
    PER_VIEW,
    Verdict,
    agreement,
    healthy,
    info_consistent,
    replicas_follow_live_masters,
    shards_match_nodes,
    slot_coverage,
    state_ok,
    unique_epochs,
)
from harness.topology import (
    NodeEntry,
    NodeView,
    Shard,
    ShardNode,
    Snapshot,
    parse_cluster_nodes,
    parse_info,
)

M1 = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
M2 = "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"
M3 = "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"
R1 = "07c37dfeb235213a872192d90877d0cd55635b91"
R2 = "6ec23923021cf3ffec47632106199cb7f496ce01"
R3 = "824fe116063bc5fcf9f4ffd895bc17aee7731ac3"
X = "aa11bb22cc33dd44ee55ff6677889900aabbccdd"  # a node only some views know

PORT = {M1: 7000, M2: 7001, M3: 7002, R1: 7003, R2: 7004, R3: 7005, X: 7006}


def addr(node_id: str) -> str:
    return f"127.0.0.1:{PORT[node_id]}"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One CLUSTER NODES line, minus the observer-dependent ``myself`` flag."""

    node_id: str
    role: str  # "master" | "slave" | other flags
    master: str | None = None
    epoch: int = 0
    slots: str = ""
    extra_flags: str = ""


HEALTHY = (
    Spec(M1, "master", None, 1, "0-5460"),
    Spec(M2, "master", None, 2, "5461-10922"),
    Spec(M3, "master", None, 3, "10923-16383"),
    Spec(R1, "slave", M1, 1),
    Spec(R2, "slave", M2, 2),
    Spec(R3, "slave", M3, 3),
)

HEALTHY_INFO = {
    "cluster_state": "ok",
    "cluster_slots_assigned": "16384",
    "cluster_slots_ok": "16384",
    "cluster_slots_pfail": "0",
    "cluster_slots_fail": "0",
    "cluster_known_nodes": "6",
    "cluster_size": "3",
    "cluster_current_epoch": "6",
    "cluster_my_epoch": "1",
}


def nodes_text(specs: Iterable[Spec], me: str) -> str:
    """Render CLUSTER NODES as Redis 7.0 prints it, seen from node ``me``."""
    lines = []
    for s in specs:
        flags = ",".join(
            f for f in ("myself" if s.node_id == me else "", s.role, s.extra_flags) if f
        )
        lines.append(
            f"{s.node_id} {addr(s.node_id)}@{PORT[s.node_id] + 10000}, {flags} {s.master or '-'} "
            f"0 1700000000000 {s.epoch} connected {s.slots}".rstrip()
        )
    return "\n".join(lines) + "\n"


def info_text(**overrides: object) -> str:
    fields = {**HEALTHY_INFO, **{k: str(v) for k, v in overrides.items()}}
    return "".join(f"{k}:{v}\r\n" for k, v in fields.items())


def make_view(
    me: str = M1,
    specs: Iterable[Spec] = HEALTHY,
    info: str | None = None,
    shards: tuple[Shard, ...] | None = None,
) -> NodeView:
    return NodeView(
        observer=addr(me),
        nodes=tuple(parse_cluster_nodes(nodes_text(specs, me))),
        info=parse_info(info if info is not None else info_text()),
        shards=shards,
    )


def shards_for(specs: Iterable[Spec]) -> tuple[Shard, ...]:
    """CLUSTER SHARDS equivalent of ``specs`` (as a consistent server would report)."""
    specs = list(specs)
    out = []
    for m in (s for s in specs if s.role == "master"):
        bounds: list[int] = []
        for item in m.slots.split():
            lo, _, hi = item.partition("-")
            bounds += [int(lo), int(hi or lo)]
        members = [m] + [s for s in specs if s.master == m.node_id]
        out.append(
            Shard(
                slots=tuple((bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2)),
                nodes=tuple(
                    ShardNode(
                        s.node_id,
                        "127.0.0.1",
                        PORT[s.node_id],
                        "master" if s is m else "replica",
                        "online",
                        1000,
                    )
                    for s in members
                ),
            )
        )
    return tuple(out)


def replace(specs: Iterable[Spec], node_id: str, **changes: Any) -> tuple[Spec, ...]:
    return tuple(dataclasses.replace(s, **changes) if s.node_id == node_id else s for s in specs)


def healthy_snapshot() -> Snapshot:
    return Snapshot(
        views=tuple(make_view(me, shards=shards_for(HEALTHY)) for me in (M1, M2, M3, R1, R2, R3))
    )


def only(verdict: Verdict) -> str:
    assert not verdict.ok, "expected a problem"
    assert len(verdict.problems) == 1, verdict.problems
    return verdict.problems[0]


# -- Verdict --------------------------------------------------------------------------


def test_verdict_basics() -> None:
    ok = Verdict((), ("a",))
    bad = Verdict(("x broke",), ("b",))
    assert ok.ok and bool(ok)
    assert not bad.ok and not bool(bad)
    assert str(ok) == "ok (a)"
    assert str(bad) == "x broke"
    both = Verdict.combine([ok, bad, Verdict(("y broke",), ("a", "c"))])
    assert both.problems == ("x broke", "y broke")
    assert both.checked == ("a", "b", "c")  # deduplicated, order kept
    assert str(both) == "x broke\ny broke"
    assert Verdict.combine([]).ok


# -- healthy cluster ------------------------------------------------------------------


def test_healthy_cluster_passes_every_check() -> None:
    snap = healthy_snapshot()
    for v in snap.views:
        for check in (*PER_VIEW, state_ok):
            verdict = check(v)
            assert verdict.ok, (check.__name__, v.observer, verdict.problems)
    verdict = healthy(snap)
    assert verdict.ok, str(verdict)
    assert set(verdict.checked) == {
        "agreement",
        "state ok",
        "slot coverage",
        "unique epochs",
        "replicas follow live masters",
        "info consistent",
        "shards match nodes",
    }
    assert str(verdict).startswith("ok (agreement, ")


def test_healthy_cluster_from_redis_62_text() -> None:
    text = "\n".join(
        f"{s.node_id} {addr(s.node_id)}@{PORT[s.node_id] + 10000} "
        f"{'myself,' if s.node_id == M1 else ''}{s.role} {s.master or '-'} 0 0 {s.epoch} "
        f"connected {s.slots}".rstrip()
        for s in HEALTHY
    )
    view = NodeView(addr(M1), tuple(parse_cluster_nodes(text)), parse_info(info_text()))
    assert healthy(Snapshot((view,))).ok


# -- slot coverage --------------------------------------------------------------------


def test_gap_in_coverage_names_observer_and_slots() -> None:
    specs = replace(HEALTHY, M3, slots="10923-16000")
    msg = only(slot_coverage(make_view(specs=specs)))
    assert msg == "127.0.0.1:7000: 383 slots unassigned: 16001-16383"


def test_several_gaps_are_listed() -> None:
    specs = replace(HEALTHY, M1, slots="1-99 200-5460")
    specs = replace(specs, M3, slots="10923-16382")
    msg = only(slot_coverage(make_view(specs=specs)))
    assert "102 slots unassigned: 0,100-199,16383" in msg


def test_no_slots_at_all() -> None:
    specs = tuple(dataclasses.replace(s, slots="") for s in HEALTHY)
    msg = only(slot_coverage(make_view(specs=specs)))
    assert "16384 slots unassigned: 0-16383" in msg


def test_overlapping_ranges_name_both_nodes_and_slots() -> None:
    specs = replace(HEALTHY, M2, slots="5000-10922")
    msg = only(slot_coverage(make_view(specs=specs)))
    assert msg.startswith("127.0.0.1:7000: slots 5000-5460 claimed by several nodes: ")
    assert M1[:8] in msg and M2[:8] in msg


@pytest.mark.parametrize(
    ("bad", "text"),
    [((5460, 0), "5460-0"), ((16000, 16384), "16000-16384"), ((-1, 10), "-1-10")],
)
def test_bad_ranges_are_reported(bad: tuple[int, int], text: str) -> None:
    view = make_view()
    m1 = view.by_id()[M1]
    broken = dataclasses.replace(m1, slots=((0, 5460), bad))
    view = dataclasses.replace(view, nodes=tuple(broken if n is m1 else n for n in view.nodes))
    verdict = slot_coverage(view)
    assert not verdict.ok
    assert f"127.0.0.1:7000: node {M1[:8]} (127.0.0.1:7000) claims bad range {text}" in (
        verdict.problems
    )


def test_replica_with_slots() -> None:
    specs = replace(HEALTHY, M1, slots="0-5000")
    specs = replace(specs, R1, slots="5001-5460")
    msg = only(slot_coverage(make_view(specs=specs)))
    assert msg == f"127.0.0.1:7000: replica {R1[:8]} (127.0.0.1:7003) lists slots 5001-5460"


def test_self_overlap_within_one_node_is_flagged() -> None:
    specs = replace(HEALTHY, M1, slots="0-5460 100-200")
    msg = only(slot_coverage(make_view(specs=specs)))
    assert "slots 100-200 claimed by several nodes" in msg


# -- agreement ------------------------------------------------------------------------


def test_agreement_needs_a_view() -> None:
    verdict = agreement(Snapshot(views=(), unreachable={"h:1": "down"}))
    assert verdict.problems == ("no node was reachable to compare",)


def test_disagreement_on_slot_owners() -> None:
    moved = replace(replace(HEALTHY, M1, slots="0-4999"), M2, slots="5000-10922")
    snap = Snapshot((make_view(M1), make_view(M2, moved)))
    msg = only(agreement(snap))
    assert msg == (
        f"127.0.0.1:7001 disagrees with 127.0.0.1:7000 on slots 5000-5460: "
        f"e.g. slot 5000 owner {M2[:8]} vs {M1[:8]}"
    )


def test_disagreement_with_unassigned_slots() -> None:
    gap = replace(HEALTHY, M3, slots="10923-16382")
    msg = only(agreement(Snapshot((make_view(M1), make_view(M3, gap)))))
    assert "on slots 16383: e.g. slot 16383 owner none vs " + M3[:8] in msg


def test_disagreement_on_roles() -> None:
    # M2's view: R1 was promoted and M1 follows it (a failover M1's view has not seen)
    failed_over = replace(
        replace(HEALTHY, R1, role="master", master=None, slots="0-5460", epoch=7),
        M1,
        role="slave",
        master=R1,
        slots="",
        epoch=7,
    )
    snap = Snapshot((make_view(M1), make_view(M2, failed_over)))
    verdict = agreement(snap)
    assert len(verdict.problems) == 2
    slots_msg, roles_msg = verdict.problems
    assert "on slots 0-5460" in slots_msg and R1[:8] in slots_msg and M1[:8] in slots_msg
    assert roles_msg.startswith(
        "127.0.0.1:7001 and 127.0.0.1:7000 disagree on the role of 2 node(s): e.g. "
    )
    # the first (sorted) differing id is R1 ("07c3…" < "e7d1…")
    assert f"e.g. {R1[:8]} is master vs replica of {M1[:8]}" in roles_msg


def test_disagreement_on_membership() -> None:
    other = (*HEALTHY[:5], Spec(X, "slave", M3, 3))  # knows X instead of R3
    msg = only(agreement(Snapshot((make_view(M1), make_view(M2, other)))))
    assert msg == (
        "127.0.0.1:7001 knows other nodes than 127.0.0.1:7000: "
        f"only it knows [{X[:8]}], only 127.0.0.1:7000 knows [{R3[:8]}]"
    )


def test_membership_one_sided() -> None:
    fewer = HEALTHY[:5]
    msg = only(agreement(Snapshot((make_view(M1), make_view(M2, fewer)))))
    assert f"only it knows [-], only 127.0.0.1:7000 knows [{R3[:8]}]" in msg


def test_nodes_in_handshake_do_not_count_as_members() -> None:
    more = (*HEALTHY, Spec(X, "handshake"))
    noaddr = (*HEALTHY, Spec(X, "master", extra_flags="noaddr"))
    snap = Snapshot((make_view(M1), make_view(M2, more), make_view(M3, noaddr)))
    assert agreement(snap).ok


def test_agreement_compares_every_view_with_the_first() -> None:
    fewer = HEALTHY[:5]
    snap = Snapshot((make_view(M1), make_view(M2), make_view(M3, fewer), make_view(R1, fewer)))
    verdict = agreement(snap)
    assert len(verdict.problems) == 2
    assert verdict.problems[0].startswith("127.0.0.1:7002 ")
    assert verdict.problems[1].startswith("127.0.0.1:7003 ")


# -- config epochs --------------------------------------------------------------------


def test_duplicate_config_epochs_among_masters_with_slots() -> None:
    specs = replace(HEALTHY, M2, epoch=1)
    msg = only(unique_epochs(make_view(specs=specs)))
    assert msg == (
        f"127.0.0.1:7000: masters {M1[:8]} (127.0.0.1:7000), {M2[:8]} (127.0.0.1:7001) "
        "share config epoch 1"
    )


def test_duplicate_epochs_that_do_not_count() -> None:
    # replicas print their master's epoch; slot-less and failed masters are ignored
    specs = (
        *HEALTHY,
        Spec(X, "master", None, 2),  # no slots, same epoch as M2
    )
    assert unique_epochs(make_view(specs=specs)).ok
    failed = replace(replace(HEALTHY, M3, epoch=2), M3, extra_flags="fail")
    assert unique_epochs(make_view(specs=failed)).ok


# -- replicas -------------------------------------------------------------------------


def test_replica_follows_unknown_node() -> None:
    specs = replace(HEALTHY, R1, master=X)
    msg = only(replicas_follow_live_masters(make_view(specs=specs)))
    assert msg == f"127.0.0.1:7000: replica {R1[:8]} (127.0.0.1:7003) follows unknown node {X}"


def test_replica_follows_failed_master() -> None:
    specs = replace(HEALTHY, M3, extra_flags="fail")
    msg = only(replicas_follow_live_masters(make_view(specs=specs)))
    assert msg == (
        f"127.0.0.1:7000: replica {R3[:8]} (127.0.0.1:7005) follows failed master "
        f"{M3[:8]} (127.0.0.1:7002)"
    )


def test_replica_follows_a_replica() -> None:
    specs = replace(HEALTHY, R2, master=R1)
    msg = only(replicas_follow_live_masters(make_view(specs=specs)))
    assert msg == (
        f"127.0.0.1:7000: replica {R2[:8]} (127.0.0.1:7004) follows {R1[:8]} which is not a master"
    )


def test_failed_replicas_and_suspected_masters_are_not_reported() -> None:
    specs = replace(replace(HEALTHY, R1, master=X, extra_flags="fail"), M2, extra_flags="fail?")
    assert replicas_follow_live_masters(make_view(specs=specs)).ok


# -- CLUSTER INFO ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "implied"),
    [
        ("cluster_slots_assigned", 16000, 16384),
        ("cluster_slots_ok", 0, 16384),
        ("cluster_slots_fail", 5, 0),
        ("cluster_slots_pfail", 5461, 0),
        ("cluster_known_nodes", 7, 6),
        ("cluster_size", 2, 3),
    ],
)
def test_info_counter_mismatch(key: str, value: int, implied: int) -> None:
    view = make_view(info=info_text(**{key: value}))
    msg = only(info_consistent(view))
    assert msg == f"127.0.0.1:7000: CLUSTER INFO {key}={value} but CLUSTER NODES implies {implied}"


def test_current_epoch_below_a_config_epoch() -> None:
    specs = replace(HEALTHY, M3, epoch=9)
    msg = only(info_consistent(make_view(specs=specs)))
    assert msg == "127.0.0.1:7000: cluster_current_epoch=6 is below a node's config epoch 9"


def test_info_counts_failed_and_suspected_slots() -> None:
    specs = replace(replace(HEALTHY, M2, extra_flags="fail"), M3, extra_flags="fail?")
    info = info_text(
        cluster_slots_ok=5461,
        cluster_slots_fail=5462,
        cluster_slots_pfail=5461,
        cluster_state="fail",
    )
    view = make_view(specs=specs, info=info)
    assert info_consistent(view).ok
    assert not info_consistent(make_view(specs=specs)).ok  # healthy counters now mismatch


def test_info_partial_and_empty() -> None:
    assert info_consistent(make_view(info="cluster_state:ok\r\n")).ok
    verdict = info_consistent(make_view(info=""))
    assert verdict.ok
    assert verdict.checked == ()


def test_state_ok() -> None:
    assert state_ok(make_view()).ok
    assert only(state_ok(make_view(info=info_text(cluster_state="fail")))) == (
        "127.0.0.1:7000: cluster_state is fail"
    )
    assert not state_ok(make_view(info="")).ok


# -- CLUSTER SHARDS -------------------------------------------------------------------


def with_shard(shards: tuple[Shard, ...], index: int, **changes: Any) -> tuple[Shard, ...]:
    return tuple(
        dataclasses.replace(s, **changes) if i == index else s for i, s in enumerate(shards)
    )


def test_shards_absent_means_nothing_to_check() -> None:
    verdict = shards_match_nodes(make_view(shards=None))
    assert verdict.ok and verdict.checked == ()


def test_shards_match() -> None:
    verdict = shards_match_nodes(make_view(shards=shards_for(HEALTHY)))
    assert verdict.ok and verdict.checked == ("shards match nodes",)


def test_shards_with_split_ranges_and_any_order_match() -> None:
    specs = replace(HEALTHY, M1, slots="0-100 101-5460")
    shards = shards_for(specs)
    reordered = with_shard(shards, 0, slots=tuple(reversed(shards[0].slots)))
    assert shards_match_nodes(make_view(shards=reordered)).ok
    assert shards_match_nodes(make_view(specs=specs, shards=shards_for(HEALTHY))).ok


def test_slots_missing_from_shards() -> None:
    shards = shards_for(replace(HEALTHY, M1, slots="0-100 200-5460"))
    msg = only(shards_match_nodes(make_view(shards=shards)))
    assert msg == (
        "127.0.0.1:7000: slots 101-199 of e7d1eecc are assigned in CLUSTER NODES but absent from CLUSTER SHARDS"
    )


def test_master_missing_from_shards() -> None:
    shards = shards_for(HEALTHY)[:2]  # M3's shard left out
    msg = only(shards_match_nodes(make_view(shards=shards)))
    assert "127.0.0.1:7000: slots 10923-16383 " in msg
    assert "absent from CLUSTER SHARDS" in msg


def test_shard_slots_spanning_two_owners() -> None:
    shards = with_shard(shards_for(HEALTHY), 0, slots=((0, 5500),))
    msg = only(shards_match_nodes(make_view(shards=shards)))
    assert msg == (
        f"127.0.0.1:7000: CLUSTER SHARDS slots 0-5500 belong to [{M2[:8]}, {M1[:8]}] "
        "in CLUSTER NODES, not to one node"
    )


def test_shard_slots_unassigned_in_nodes() -> None:
    specs = replace(HEALTHY, M3, slots="10923-16000")
    msg = only(shards_match_nodes(make_view(specs=specs, shards=shards_for(HEALTHY))))
    assert msg == (
        f"127.0.0.1:7000: CLUSTER SHARDS slots 10923-16383 belong to [{M3[:8]}, none] "
        "in CLUSTER NODES, not to one node"
    )


def test_shard_without_its_owner() -> None:
    shards = shards_for(HEALTHY)
    shards = with_shard(shards, 2, nodes=shards[2].nodes[1:])  # drop M3, keep R3
    msg = only(shards_match_nodes(make_view(shards=shards)))
    assert msg == (
        f"127.0.0.1:7000: CLUSTER SHARDS slots 10923-16383: owner {M3[:8]} per CLUSTER NODES "
        f"is not in the shard [{R3[:8]}]"
    )


def test_shard_owned_by_a_stranger() -> None:
    stranger = ShardNode(X, "127.0.0.1", 7006, "master", "online", 0)
    shards = with_shard(shards_for(HEALTHY), 0, nodes=(stranger,))
    msg = only(shards_match_nodes(make_view(shards=shards)))
    assert msg == (
        f"127.0.0.1:7000: CLUSTER SHARDS slots 0-5460: owner {M1[:8]} per CLUSTER NODES "
        f"is not in the shard [{X[:8]}]"
    )


def test_shard_lists_the_owner_as_replica() -> None:
    shards = shards_for(HEALTHY)
    m3, r3 = shards[2].nodes
    swapped = (dataclasses.replace(m3, role="replica"), dataclasses.replace(r3, role="master"))
    msg = only(shards_match_nodes(make_view(shards=with_shard(shards, 2, nodes=swapped))))
    assert msg == (
        f"127.0.0.1:7000: CLUSTER SHARDS slots 10923-16383: owner {M3[:8]} is listed with role "
        "replica"
    )


def test_primary_role_counts_as_master() -> None:
    shards = shards_for(HEALTHY)
    m1, r1 = shards[0].nodes
    renamed = with_shard(shards, 0, nodes=(dataclasses.replace(m1, role="primary"), r1))
    assert shards_match_nodes(make_view(shards=renamed)).ok


def test_failed_ex_master_may_stay_in_its_shard() -> None:
    # after a failover R3 owns the slots; Valkey 8 still lists the failed M3 as "master"
    specs = replace(
        replace(HEALTHY, R3, role="master", master=None, slots="10923-16383", epoch=7),
        M3,
        role="master",
        slots="",
        epoch=3,
        extra_flags="fail",
    )
    shards = shards_for(HEALTHY)
    m3, r3 = shards[2].nodes
    after = (
        dataclasses.replace(m3, role="master", health="fail"),
        dataclasses.replace(r3, role="master"),
    )
    view = make_view(specs=specs, shards=with_shard(shards, 2, nodes=after))
    assert shards_match_nodes(view).ok


def test_shards_without_slots_are_skipped() -> None:
    empty = Shard((), (ShardNode(X, "127.0.0.1", 7006, "master", "online", 0),))
    assert shards_match_nodes(make_view(shards=(*shards_for(HEALTHY), empty))).ok


def test_out_of_range_shard_slots_are_a_problem_not_a_crash() -> None:
    shards = with_shard(shards_for(HEALTHY), 2, slots=((10923, 16384),))
    verdict = shards_match_nodes(make_view(shards=shards))
    assert not verdict.ok
    assert "16384" in str(verdict)


# -- healthy() ------------------------------------------------------------------------


def test_healthy_reports_unreachable_nodes_when_required() -> None:
    snap = healthy_snapshot()
    snap = Snapshot(views=snap.views[:5], unreachable={"127.0.0.1:7005": "Connection refused"})
    verdict = healthy(snap)
    assert verdict.problems == ("127.0.0.1:7005 unreachable: Connection refused",)
    assert "reachable" in verdict.checked
    assert healthy(snap, require_all_reachable=False).ok


def test_healthy_with_nothing_reachable() -> None:
    snap = Snapshot(views=(), unreachable={"127.0.0.1:7000": "timeout"})
    for required in (True, False):
        verdict = healthy(snap, require_all_reachable=required)
        assert not verdict.ok
        assert "no node was reachable to compare" in verdict.problems


def test_healthy_collects_problems_from_every_view_and_check() -> None:
    gap = replace(HEALTHY, M3, slots="10923-16382")
    snap = Snapshot(
        views=(make_view(M1), make_view(M2, gap, info=info_text(cluster_state="fail"))),
        unreachable={"127.0.0.1:7005": "Connection refused"},
    )
    verdict = healthy(snap)
    text = str(verdict)
    assert "127.0.0.1:7001 disagrees with 127.0.0.1:7000 on slots 16383" in text
    assert "127.0.0.1:7001: cluster_state is fail" in text
    assert "127.0.0.1:7001: 1 slots unassigned: 16383" in text
    assert "127.0.0.1:7001: CLUSTER INFO cluster_slots_assigned=16384" in text
    assert "127.0.0.1:7005 unreachable: Connection refused" in text
    assert not any(p.startswith("127.0.0.1:7000:") for p in verdict.problems)


def test_checkers_accept_hand_built_entries() -> None:
    def entry(node_id: str, flags: set[str], slots: tuple[tuple[int, int], ...]) -> NodeEntry:
        return NodeEntry(
            node_id=node_id,
            host="10.0.0.1",
            port=PORT[node_id],
            bus_port=PORT[node_id] + 10000,
            hostname="",
            flags=frozenset(flags),
            master_id=None,
            ping_sent=0,
            pong_recv=0,
            config_epoch=PORT[node_id] - 6999,
            link_state="connected",
            slots=slots,
        )

    nodes = (
        entry(M1, {"myself", "master"}, ((0, 8191),)),
        entry(M2, {"master"}, ((8192, 16383),)),
    )
    view = NodeView("10.0.0.1:7000", nodes, {"cluster_state": "ok", "cluster_size": "2"})
    assert healthy(Snapshot((view,))).ok


def test_a_new_cluster_waits_for_replicas_in_their_masters_shard() -> None:
    """harness.formation.replicas_apart: a replica some node still lists in a shard of
    its own (its first shard id, before the shared one arrived) keeps bring-up waiting."""
    from harness.formation import replicas_apart

    assert replicas_apart(healthy_snapshot()) == []
    settled = shards_for(HEALTHY)
    m1, *rest = settled
    r1 = next(n for n in m1.nodes if n.node_id == R1)
    split = (
        Shard(m1.slots, tuple(n for n in m1.nodes if n is not r1)),
        Shard((), (r1,)),
        *rest,
    )
    snap = Snapshot(views=(make_view(M2, shards=split), make_view(M1, shards=settled)))
    assert replicas_apart(snap) == [
        f"{addr(M2)}: CLUSTER SHARDS puts replica {R1[:8]} apart from its master {M1[:8]} "
        "(shard ids not settled)"
    ]
    assert replicas_apart(Snapshot(views=(make_view(M2, shards=None),))) == []
