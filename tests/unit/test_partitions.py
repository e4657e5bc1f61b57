"""Partition shapes: who can hear whom."""

from __future__ import annotations

import random

import pytest

from harness import partitions as p


def test_isolate_cuts_both_directions() -> None:
    part = p.isolate(4, 2)
    hears = p.hears(part, 4)
    assert hears[2] == set()
    assert all(2 not in hears[i] for i in (0, 1, 3))
    assert hears[0] == {1, 3}
    assert part.describe() == "isolate: n2 | n0,n1,n3"


def test_split_puts_unlisted_nodes_in_one_more_group() -> None:
    part = p.split(6, [[0, 4]])
    hears = p.hears(part, 6)
    assert hears[0] == {4} and hears[4] == {0}
    assert hears[1] == {2, 3, 5}
    assert part.groups == ((0, 4), (1, 2, 3, 5))


@pytest.mark.parametrize("groups", [[[0, 1], [1, 2]], [[0, 7]]])
def test_split_rejects_bad_groups(groups: list[list[int]]) -> None:
    with pytest.raises(ValueError):
        p.split(4, groups)


@pytest.mark.parametrize("count", [3, 5, 6, 7])
def test_majority_minority_sizes(count: int) -> None:
    part = p.majority_minority(count, random.Random(3))
    big, small = part.groups
    assert len(small) == (count - 1) // 2 and len(big) > count // 2
    assert set(big) | set(small) == set(range(count))


def test_bridge_node_hears_both_sides_which_do_not_hear_each_other() -> None:
    part = p.bridge(5, random.Random(1))
    a, (middle,), b = part.groups
    hears = p.hears(part, 5)
    assert hears[middle] == set(range(5)) - {middle}
    assert all(x not in hears[y] for x in a for y in b)


@pytest.mark.parametrize("count", [4, 5, 6, 7, 9])
def test_majorities_ring_gives_everyone_a_different_majority(count: int) -> None:
    part = p.majorities_ring(count, random.Random(count))
    hears = p.hears(part, count)
    majority = count // 2 + 1
    assert all(len(v) + 1 >= majority for v in hears.values())
    assert len({frozenset(v | {k}) for k, v in hears.items()}) == count
    assert all(
        (d in hears[s]) == (s in hears[d]) for s in range(count) for d in range(count) if s != d
    )


def test_one_way_blocks_only_one_direction() -> None:
    part = p.one_way(3, [0], [1, 2])
    hears = p.hears(part, 3)
    assert 0 not in hears[1] and 0 not in hears[2]
    assert 1 in hears[0] and 2 in hears[0]


def test_same_seed_same_partition() -> None:
    assert p.majority_minority(7, random.Random(5)) == p.majority_minority(7, random.Random(5))
    assert p.majorities_ring(7, random.Random(5)) == p.majorities_ring(7, random.Random(5))
