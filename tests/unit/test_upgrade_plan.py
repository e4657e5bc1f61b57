"""Upgrade plans: the documented order per shard, printable before they run."""

from __future__ import annotations

import pytest

from harness.upgrade.plan import PLANS, Shard, make_plan

SHARDS = [Shard("n0", ("n3",)), Shard("n1", ("n4",)), Shard("n2", ("n5",))]


def _steps(kind: str, shards: list[Shard] = SHARDS, **kw: object) -> list[tuple[str, int, str]]:
    plan = make_plan(kind, shards, source="redis 7.0.15", target="valkey 8.0.1", **kw)  # type: ignore[arg-type]
    return [(s.action, s.shard, s.node) for s in plan.steps]


def test_in_place_upgrades_replicas_then_fails_over_then_the_demoted_primary_at_once() -> None:
    assert _steps("in-place")[:3] == [
        ("upgrade-replica", 0, "n3"),
        ("failover", 0, "n3"),
        ("upgrade-replica", 0, "n0"),  # next, before anything else can promote it
    ]
    assert len(_steps("in-place")) == 9


def test_in_place_with_two_replicas_upgrades_both_before_the_failover() -> None:
    steps = _steps("in-place", [Shard("n0", ("n2", "n4"))])
    assert steps == [
        ("upgrade-replica", 0, "n2"),
        ("upgrade-replica", 0, "n4"),
        ("failover", 0, "n2"),
        ("upgrade-replica", 0, "n0"),
    ]


def test_in_place_without_replicas_restarts_the_primary_and_says_what_it_costs() -> None:
    plan = make_plan("in-place", [Shard("n0")], source="a", target="b", persistence="none")
    assert [(s.action, s.node) for s in plan.steps] == [("upgrade-primary", "n0")]
    assert any("no replica" in n and "empty" in n for n in plan.notes)


def test_replace_adds_a_new_node_per_old_one_fails_over_then_removes_the_old() -> None:
    assert _steps("replace", [Shard("n0", ("n3",))]) == [
        ("add-replica", 0, "new-0-0"),
        ("add-replica", 0, "new-0-1"),
        ("failover", 0, "new-0-0"),
        ("remove-node", 0, "n0"),
        ("remove-node", 0, "n3"),
    ]


def test_unsafe_plans_are_what_they_say() -> None:
    assert _steps("in-place-primaries-first", [Shard("n0", ("n3",))]) == [
        ("upgrade-primary", 0, "n0"),
        ("upgrade-replica", 0, "n3"),
    ]
    steps = _steps("replace-unsynced", [Shard("n0", ("n3",))])
    assert steps[:2] == [("add-replica", 0, "new-0-0"), ("takeover", 0, "new-0-0")]
    plan = make_plan("replace-unsynced", [Shard("n0")], source="a", target="b")
    assert not plan.safe_by_design and plan.steps[0].sync is False


def test_a_replica_that_cannot_sync_from_the_target_is_foreseen_in_the_notes() -> None:
    plan = make_plan(
        "in-place",
        SHARDS,
        source="redis 7.0.15",
        target="valkey 8.0.1",
        replica_can_sync_from_target=False,
    )
    assert any("cannot take a full sync" in n and "upgraded next" in n for n in plan.notes)


def test_render_lists_every_step_and_the_plan_round_trips_to_json() -> None:
    plan = make_plan("in-place", SHARDS, source="redis 7.0.15", target="valkey 8.0.1")
    text = plan.render()
    assert text.splitlines()[0] == (
        "upgrade plan in-place: redis 7.0.15 -> valkey 8.0.1, 3 shards, 9 steps"
    )
    assert " 2. shard 0: failover n3 (takes over from n0)" in text
    data = plan.to_json()
    assert [s["action"] for s in data["steps"]][:3] == [
        "upgrade-replica",
        "failover",
        "upgrade-replica",
    ]


def test_unknown_plan_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown plan"):
        make_plan("sideways", SHARDS, source="a", target="b")  # type: ignore[arg-type]
    assert set(PLANS) == {"in-place", "replace", "in-place-primaries-first", "replace-unsynced"}
