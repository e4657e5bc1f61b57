"""harness.slotmap against slot-by-slot answers, on seeded random maps (the range
arithmetic must give exactly what a loop over the 16384 slots gives)."""

from __future__ import annotations

import itertools
import random

import pytest

from harness import slotmap
from harness.crc16 import SLOTS
from harness.topology import NodeView, parse_cluster_nodes

IDS = [f"{c}" * 40 for c in "abcdef"]


def random_ranges(rng: random.Random, n: int, *, wild: bool = False) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        lo = rng.randrange(-20 if wild else 0, SLOTS + (20 if wild else 0))
        hi = lo + rng.choice([0, 1, 5, 100, 3000])
        out.append((lo, min(hi, SLOTS - 1) if not wild else hi))
    return out


def split_map(rng: random.Random, owners: int) -> list[tuple[int, int, str]]:
    """A whole, disjoint map cut at random points, owners drawn at random (so adjacent
    ranges of one owner happen)."""
    cuts = sorted(rng.sample(range(1, SLOTS), rng.randrange(0, 12)))
    bounds = [0, *cuts, SLOTS]
    return [(a, b - 1, rng.choice(IDS[:owners])) for a, b in itertools.pairwise(bounds)]


def slots_of(ranges: list[tuple[int, int]]) -> set[int]:
    return {s for lo, hi in ranges for s in range(lo, hi + 1)}


def per_slot(owned: list[tuple[int, int, str]]) -> list[str | None]:
    owners: list[str | None] = [None] * SLOTS
    for lo, hi, who in owned:
        for s in range(max(lo, 0), min(hi, SLOTS - 1) + 1):
            owners[s] = who
    return owners


@pytest.mark.parametrize("seed", range(40))
def test_merge_complement_subtract(seed: int) -> None:
    rng = random.Random(seed)
    a = random_ranges(rng, rng.randrange(0, 8))
    b = random_ranges(rng, rng.randrange(0, 8))
    merged = slotmap.merge(a)
    assert slots_of(merged) == slots_of(a)
    assert all(x[1] + 1 < y[0] for x, y in itertools.pairwise(merged))
    assert slotmap.count(merged) == len(slots_of(a))
    assert slots_of(slotmap.complement(a)) == set(range(SLOTS)) - slots_of(a)
    assert slots_of(slotmap.subtract(a, slotmap.merge(b))) == slots_of(a) - slots_of(b)


@pytest.mark.parametrize("seed", range(40))
def test_owner_ranges_equal_the_per_slot_map(seed: int) -> None:
    rng = random.Random(seed)
    owned = (
        split_map(rng, 4)
        if seed % 2
        else [(lo, hi, rng.choice(IDS)) for lo, hi in random_ranges(rng, 6, wild=True)]
    )
    ranges = slotmap.owner_ranges(owned)
    assert per_slot(list(ranges)) == per_slot(owned)
    # canonical: sorted, disjoint, no two adjacent ranges of one owner
    for x, y in itertools.pairwise(ranges):
        assert x[1] < y[0]
        assert not (x[1] + 1 == y[0] and x[2] == y[2])


@pytest.mark.parametrize("seed", range(40))
def test_differences_are_the_differing_slots(seed: int) -> None:
    rng = random.Random(seed)
    a = slotmap.owner_ranges(split_map(rng, 3))
    b = list(split_map(rng, 3))
    if seed % 3 == 0:  # a hole in one map
        b = [r for r in b if r != b[0]]
    b_ranges = slotmap.owner_ranges(b)
    pa, pb = per_slot(list(a)), per_slot(list(b_ranges))
    diff = slotmap.differences(a, b_ranges)
    want = [s for s in range(SLOTS) if pa[s] != pb[s]]
    assert sorted(slots_of([(lo, hi) for lo, hi, _, _ in diff])) == want
    for lo, hi, here, there in diff:
        assert {pa[s] for s in range(lo, hi + 1)} == {here}
        assert {pb[s] for s in range(lo, hi + 1)} == {there}
    assert slotmap.differences(a, a) == []


@pytest.mark.parametrize("seed", range(30))
def test_claims_count_every_claimant(seed: int) -> None:
    rng = random.Random(seed)
    claimed = [(lo, hi, rng.choice(IDS[:3])) for lo, hi in random_ranges(rng, 6)]
    holders: list[list[str]] = [[] for _ in range(SLOTS)]
    for lo, hi, who in claimed:
        for s in range(lo, hi + 1):
            holders[s].append(who)
    got: list[tuple[str, ...]] = [()] * SLOTS
    for lo, hi, who in slotmap.claims(claimed):
        for s in range(lo, hi + 1):
            got[s] = who
    assert got == [tuple(sorted(h)) for h in holders]


@pytest.mark.parametrize("seed", range(20))
def test_owners_within(seed: int) -> None:
    rng = random.Random(seed)
    owned = slotmap.owner_ranges(split_map(rng, 4)[1:])  # maybe a hole at the start
    owners = per_slot(list(owned))
    lo = rng.randrange(SLOTS)
    hi = min(SLOTS - 1, lo + rng.choice([0, 10, 4000]))
    assert slotmap.owners_within(slotmap.segments(owned), lo, hi) == set(owners[lo : hi + 1])


def test_views_agree_however_the_lines_split_the_ranges() -> None:
    a, b = IDS[0], IDS[1]
    one = f"{a} h:1@2 myself,master - 0 0 1 connected 0-8191\n{b} h:2@3 master - 0 0 2 connected 8192-16383"
    split = f"{a} h:1@2 master - 0 0 1 connected 0-99 100-8191\n{b} h:2@3 myself,master - 0 0 2 connected 8192-16383"
    v1 = NodeView("h:1", tuple(parse_cluster_nodes(one)))
    v2 = NodeView("h:2", tuple(parse_cluster_nodes(split)))
    assert v1.owner_ranges == v2.owner_ranges == ((0, 8191, a), (8192, 16383, b))
    assert v1.slot_owners() == v2.slot_owners()
