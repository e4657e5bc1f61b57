"""The pure part of slot reports: owners per view, open markers, key counts, hidden
keys, and the messages a failed migration shows."""

from __future__ import annotations

from harness.ops import MigrationError, SlotReport, slot_reports
from harness.topology import NodeView, parse_cluster_nodes

A, B, C, RA, RB = ("a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40)
ADDR = {A: "127.0.0.1:7000", B: "127.0.0.1:7001", C: "127.0.0.1:7002"}
ADDR |= {RA: "127.0.0.1:7003", RB: "127.0.0.1:7004"}


def line(node: str, flags: str, master: str = "-", slots: str = "") -> str:
    port = ADDR[node].rsplit(":", 1)[1]
    return f"{node} {ADDR[node]}@1{port} {flags} {master} 0 0 1 connected {slots}".rstrip()


def view(me: str, lines: dict[str, tuple[str, str, str]]) -> NodeView:
    """``lines``: node -> (flags, master, slots) as ``me`` reports them; ``myself`` is
    added to ``me``'s flags."""
    text = "\n".join(
        line(n, ("myself," if n == me else "") + f, m, s) for n, (f, m, s) in lines.items()
    )
    return NodeView(ADDR[me], tuple(parse_cluster_nodes(text)))


def layout(**extra: str) -> dict[str, tuple[str, str, str]]:
    """A owns 0-99, B 100-16383, C none; RA replicates A, RB replicates B. ``extra``:
    node name -> slot text replacing its slots (markers included)."""
    base = {
        A: ("master", "-", "0-99"),
        B: ("master", "-", "100-16383"),
        C: ("master", "-", ""),
        RA: ("slave", A, ""),
        RB: ("slave", B, ""),
    }
    names = {"A": A, "B": B, "C": C}
    for name, slots in extra.items():
        nid = names[name]
        base[nid] = (base[nid][0], base[nid][1], slots)
    return base


def test_a_settled_slot_is_owned_everywhere_and_not_open() -> None:
    views = [view(n, layout()) for n in (A, B, C, RA, RB)]
    counts = {A: {5: 3}, RA: {5: 3}}
    (r,) = slot_reports(views, counts, [5])
    assert r.agreed_owner == A and not r.is_open and not r.hidden
    assert r.keys_on(A) == 3 and r.keys_on(RA) == 3 and r.keys_on(B) == 0
    assert r.settled(A) and not r.settled(C)
    assert r.describe() == (
        "slot 5: owner 127.0.0.1:7000 per 5 node(s); not open; "
        "keys: 127.0.0.1:7000=3 127.0.0.1:7003=3"
    )


def test_a_half_done_migration_shows_both_markers_and_keys_on_both_sides() -> None:
    # A migrates slot 5 to C: A's own line shows [5->-C], C's own line [5-<-A]; the
    # others print no markers (CLUSTER NODES shows them on the myself line only)
    views = [
        view(A, layout(A=f"0-99 [5->-{C}]")),
        view(C, layout(C=f"[5-<-{A}]")),
        *(view(n, layout()) for n in (B, RA, RB)),
    ]
    counts = {A: {5: 7}, C: {5: 4}, RA: {5: 7}}
    (r,) = slot_reports(views, counts, [5])
    assert r.migrating == {A: C} and r.importing == {C: A} and r.is_open
    assert r.agreed_owner == A and not r.hidden  # the importer's keys are not hidden
    assert not r.settled(A)
    text = r.describe()
    assert text.startswith("slot 5: owner 127.0.0.1:7000 per 5 node(s); ")
    assert (
        "open: 127.0.0.1:7000 migrating to 127.0.0.1:7002, 127.0.0.1:7002 importing from 127.0.0.1:7000"
        in text
    )
    assert "keys: 127.0.0.1:7000=7 127.0.0.1:7002=4 127.0.0.1:7003=7" in text


def test_keys_on_a_node_that_neither_owns_nor_imports_are_hidden() -> None:
    views = [view(n, layout()) for n in (A, B, C, RA, RB)]
    counts = {A: {5: 2}, C: {5: 1}, RB: {5: 1}}
    (r,) = slot_reports(views, counts, [5])
    assert r.hidden == {C: 1, RB: 1}  # RB's master B does not own slot 5 either
    assert r.describe().endswith("hidden: 127.0.0.1:7002=1 127.0.0.1:7004=1")


def test_a_replica_of_the_importer_is_not_hidden() -> None:
    views = [
        view(C, layout(C=f"[5-<-{A}]")),
        view(RB, {**layout(), RB: ("slave", C, "")}),  # RB replicates C here
    ]
    (r,) = slot_reports(views, {RB: {5: 2}, C: {5: 2}}, [5])
    assert not r.hidden, r.describe()


def test_views_that_disagree_name_each_owner_and_who_says_so() -> None:
    after = layout(A="0-4 6-99", C="5")
    views = [view(A, after), view(C, after), view(B, layout())]
    (r,) = slot_reports(views, {C: {5: 1}}, [5], unreachable={"127.0.0.1:7009": "killed"})
    assert r.owners == {A, C} and r.agreed_owner is None
    assert r.describe() == (
        "slot 5: owner 127.0.0.1:7002 per 127.0.0.1:7000, 127.0.0.1:7002; "
        "127.0.0.1:7000 per 127.0.0.1:7001; not open; keys: 127.0.0.1:7002=1; "
        "unreachable: 127.0.0.1:7009"
    )


def test_an_unassigned_slot_is_owned_by_nobody() -> None:
    (r,) = slot_reports([view(A, layout(A="0-4 6-99"))], {}, [5])
    assert r.owner == {A: None} and r.agreed_owner is None
    assert r.describe() == "slot 5: owner nobody per 1 node(s); not open; keys: none"


def test_the_error_carries_the_reports_and_shows_a_few() -> None:
    reports = [SlotReport(s, {A: A}, {}, {}, {A: 1}, {}, ADDR) for s in range(10)]
    err = MigrationError("slot 0 127.0.0.1:7000 -> 127.0.0.1:7002: it broke", reports)
    assert err.reports == reports and err.message.endswith("it broke")
    lines = str(err).splitlines()
    assert lines[0] == "slot 0 127.0.0.1:7000 -> 127.0.0.1:7002: it broke"
    assert (
        lines[1] == "  slot 0: owner 127.0.0.1:7000 per 1 node(s); not open; keys: 127.0.0.1:7000=1"
    )
    assert lines[-1] == "  (+2 more slots)" and len(lines) == 10
