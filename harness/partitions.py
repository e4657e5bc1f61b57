"""Partition shapes as "who cannot hear whom", in the Jepsen tradition.

A shape is a pure function from nodes to the set of blocked (source, destination) pairs:
the destination drops every packet from the source. Backends only need to drop packets per
pair (:meth:`~harness.backends.base.Node.drop_from`); every shape follows from that.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Partition:
    """A named set of blocked links between nodes (by index into the cluster's nodes)."""

    shape: str
    blocked: frozenset[tuple[int, int]]  # (source, destination)
    groups: tuple[tuple[int, ...], ...] = ()

    def describe(self) -> str:
        if self.groups:
            return f"{self.shape}: " + " | ".join(",".join(f"n{i}" for i in g) for g in self.groups)
        links = ", ".join(f"n{s}->n{d}" for s, d in sorted(self.blocked))
        return f"{self.shape}: {links}"

    def can_hear(self, dst: int, src: int) -> bool:
        return (src, dst) not in self.blocked


def _between(groups: Sequence[Sequence[int]]) -> frozenset[tuple[int, int]]:
    blocked: set[tuple[int, int]] = set()
    for gi, a in enumerate(groups):
        for gj, b in enumerate(groups):
            if gi != gj:
                blocked.update((s, d) for s in a for d in b if s != d)
    return frozenset(blocked)


def isolate(count: int, node: int) -> Partition:
    """``node`` hears nobody and nobody hears it."""
    rest = tuple(i for i in range(count) if i != node)
    return Partition("isolate", _between([(node,), rest]), ((node,), rest))


def split(count: int, groups: Sequence[Sequence[int]]) -> Partition:
    """Nodes hear only the members of their own group; unlisted nodes form one more group."""
    listed = [i for g in groups for i in g]
    if len(set(listed)) != len(listed):
        raise ValueError(f"a node appears in two groups: {groups}")
    if any(not 0 <= i < count for i in listed):
        raise ValueError(f"groups name nodes outside 0..{count - 1}: {groups}")
    rest = tuple(i for i in range(count) if i not in listed)
    all_groups = [tuple(g) for g in groups if g] + ([rest] if rest else [])
    return Partition("split", _between(all_groups), tuple(all_groups))


def majority_minority(count: int, rng: random.Random, minority: int | None = None) -> Partition:
    """A random minority (default: as large as a minority can be) cut off from the rest."""
    size = (count - 1) // 2 if minority is None else minority
    if not 0 < size < count:
        raise ValueError(f"minority of {size} is impossible with {count} nodes")
    nodes = list(range(count))
    rng.shuffle(nodes)
    small, big = tuple(sorted(nodes[:size])), tuple(sorted(nodes[size:]))
    return Partition("majority-minority", _between([big, small]), (big, small))


def bridge(count: int, rng: random.Random) -> Partition:
    """Two halves that cannot hear each other, and one bridge node both sides hear."""
    if count < 3:
        raise ValueError("a bridge needs at least 3 nodes")
    nodes = list(range(count))
    rng.shuffle(nodes)
    middle = nodes[0]
    rest = nodes[1:]
    a, b = sorted(rest[: len(rest) // 2]), sorted(rest[len(rest) // 2 :])
    groups = (tuple(a), (middle,), tuple(b))
    return Partition("bridge", _between([a, b]), groups)


def majorities_ring(count: int, rng: random.Random) -> Partition:
    """Every node hears a majority, but each a different one: nodes on a (shuffled) ring
    hear their nearest neighbours on both sides, just enough of them for a majority."""
    if count < 4:
        raise ValueError(
            "a majorities ring needs at least 4 nodes (with 3, everyone hears everyone)"
        )
    order = list(range(count))
    rng.shuffle(order)
    reach = -(-(count // 2) // 2)  # neighbours per side: 2*reach >= count//2 others
    position = {node: pos for pos, node in enumerate(order)}

    def near(a: int, b: int) -> bool:
        d = abs(position[a] - position[b])
        return min(d, count - d) <= reach

    blocked = frozenset(
        (s, d) for d in range(count) for s in range(count) if s != d and not near(s, d)
    )
    return Partition("majorities-ring", blocked)


def one_way(count: int, sources: Sequence[int], targets: Sequence[int]) -> Partition:
    """``targets`` stop hearing ``sources``; the other direction still works."""
    blocked = frozenset((s, d) for s in sources for d in targets if s != d)
    return Partition("one-way", blocked, (tuple(sources), tuple(targets)))


def hears(partition: Partition, count: int) -> dict[int, set[int]]:
    """Whom each node can hear (for messages and tests)."""
    return {
        d: {s for s in range(count) if s != d and partition.can_hear(d, s)} for d in range(count)
    }
