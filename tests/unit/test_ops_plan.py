"""The pure parts of scaling: the rebalance plan and replica maps."""

from __future__ import annotations

import pytest

from harness.crc16 import SLOTS
from harness.ops import plan_rebalance, replica_map
from harness.spec import slot_ranges
from harness.topology import NodeView, parse_cluster_nodes


def owned_by_formation(n: int) -> dict[str, list[int]]:
    return {f"m{i}": list(range(lo, hi + 1)) for i, (lo, hi) in enumerate(slot_ranges(n))}


def apply(
    owned: dict[str, list[int]], moves: list[tuple[str, str, list[int]]]
) -> dict[str, set[int]]:
    after = {k: set(v) for k, v in owned.items()}
    for src, dst, slots in moves:
        assert set(slots) <= after[src], f"{src} gives slots it does not own"
        after[src] -= set(slots)
        after[dst] |= set(slots)
    return after


def test_three_to_four_masters_gives_the_new_one_a_quarter_from_each_end() -> None:
    owned = {**owned_by_formation(3), "new": []}
    moves = plan_rebalance(owned)
    after = apply(owned, moves)
    assert sorted(len(s) for s in after.values()) == [4096] * 4
    assert {dst for _, dst, _ in moves} == {"new"}
    # donors give their highest slots: each keeps one contiguous range
    for m in ("m0", "m1", "m2"):
        kept = sorted(after[m])
        assert kept == list(range(kept[0], kept[-1] + 1)), m
    assert set().union(*after.values()) == set(range(SLOTS))


@pytest.mark.parametrize("before, extra", [(3, 1), (3, 2), (5, 2), (2, 1), (4, 3)])
def test_any_growth_ends_even_with_every_slot_owned_once(before: int, extra: int) -> None:
    owned = {**owned_by_formation(before), **{f"new{i}": [] for i in range(extra)}}
    after = apply(owned, plan_rebalance(owned))
    sizes = sorted(len(s) for s in after.values())
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == SLOTS
    assert set().union(*after.values()) == set(range(SLOTS))


def test_an_even_cluster_needs_no_move_and_nothing_needs_nothing() -> None:
    assert plan_rebalance(owned_by_formation(4)) == []
    assert plan_rebalance({}) == []


def test_the_plan_moves_only_the_excess() -> None:
    owned = {"a": list(range(0, 10000)), "b": list(range(10000, SLOTS))}
    ((src, dst, slots),) = plan_rebalance(owned)
    assert (src, dst) == ("a", "b") and slots == list(range(8192, 10000))


A, B, R1, R2 = "a" * 40, "b" * 40, "c" * 40, "d" * 40


def test_replica_map_skips_failed_and_handshaking_replicas() -> None:
    text = f"""{A} 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383
{B} 127.0.0.1:7001@17001 master - 0 0 2 connected
{R1} 127.0.0.1:7002@17002 slave {A} 0 0 1 connected
{R2} 127.0.0.1:7003@17003 slave,fail {B} 0 0 2 disconnected
"""
    view = NodeView("127.0.0.1:7000", tuple(parse_cluster_nodes(text)))
    assert replica_map(view) == {R1: A}
