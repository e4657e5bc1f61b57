"""Slot maps as ranges: what the topology checks compute, in time that grows with the
number of ranges rather than with the 16384 slots.

A node's ``CLUSTER NODES`` lists a few ranges per master; a 100-node cluster's map is
a few dozen ranges. The checks run on every poll of a readiness wait and on every view of
a snapshot, so they work on ranges (sorted, swept, merged), never slot by slot.

Ranges are inclusive ``(first, last)`` pairs, as ``CLUSTER NODES`` prints them.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence

from harness.crc16 import SLOTS

SlotRange = tuple[int, int]
#: (first, last, owner id): sorted, disjoint, adjacent ranges of one owner merged
OwnerRange = tuple[int, int, str]
#: (first, last, owner or None): a whole map, 0..16383 without a hole
Segment = tuple[int, int, str | None]


def clamp(lo: int, hi: int) -> SlotRange | None:
    """The part of ``lo..hi`` inside 0..16383, or None (as ``slot_owners`` clamps)."""
    lo, hi = max(lo, 0), min(hi, SLOTS - 1)
    return (lo, hi) if lo <= hi else None


def merge(ranges: Iterable[SlotRange]) -> list[SlotRange]:
    """Sorted, disjoint, adjacent ones joined: ``[(5, 9), (0, 4)]`` -> ``[(0, 9)]``."""
    out: list[SlotRange] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def count(ranges: Iterable[SlotRange]) -> int:
    return sum(hi - lo + 1 for lo, hi in ranges)


def complement(ranges: Iterable[SlotRange]) -> list[SlotRange]:
    """The slots of 0..16383 not in ``ranges``, as ranges."""
    out: list[SlotRange] = []
    nxt = 0
    for lo, hi in merge(ranges):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt < SLOTS:
        out.append((nxt, SLOTS - 1))
    return out


def subtract(ranges: Iterable[SlotRange], minus: Sequence[SlotRange]) -> list[SlotRange]:
    """``ranges`` without the slots of ``minus`` (which must be :func:`merge` d)."""
    out: list[SlotRange] = []
    starts = [lo for lo, _ in minus]
    for lo, hi in merge(ranges):
        cur = lo
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        while cur <= hi and i < len(minus):
            mlo, mhi = minus[i]
            if mhi < cur:
                i += 1
                continue
            if mlo > hi:
                break
            if mlo > cur:
                out.append((cur, mlo - 1))
            cur = mhi + 1
            i += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def claims(ranges: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, tuple[str, ...]]]:
    """Sweep of possibly overlapping claims: maximal ranges over which the same claimants
    (sorted, a node claiming twice counted twice) hold; unclaimed slots are left out."""
    edges: dict[int, list[tuple[int, str]]] = {}
    for lo, hi, who in ranges:
        edges.setdefault(lo, []).append((1, who))
        edges.setdefault(hi + 1, []).append((-1, who))
    out: list[tuple[int, int, tuple[str, ...]]] = []
    active: dict[str, int] = {}
    points = sorted(edges)
    for at, nxt in itertools.pairwise(points):
        for delta, who in edges[at]:
            active[who] = active.get(who, 0) + delta
            if not active[who]:
                del active[who]
        if active:
            holders = tuple(sorted(w for w, k in active.items() for _ in range(k)))
            if out and out[-1][1] == at - 1 and out[-1][2] == holders:
                out[-1] = (out[-1][0], nxt - 1, holders)
            else:
                out.append((at, nxt - 1, holders))
    return out


def owner_ranges(ranges: Sequence[tuple[int, int, str]]) -> tuple[OwnerRange, ...]:
    """The owner of every assigned slot, as ranges. Where claims overlap, the claim
    listed last wins, as in :meth:`~harness.topology.NodeView.slot_owners` (the checks
    report the overlap itself separately)."""
    clamped = [(c[0], c[1], who) for lo, hi, who in ranges if (c := clamp(lo, hi))]
    ordered = sorted(clamped)
    if all(a[1] < b[0] for a, b in itertools.pairwise(ordered)):
        out: list[OwnerRange] = []
        for lo, hi, who in ordered:
            if out and out[-1][2] == who and out[-1][1] == lo - 1:
                out[-1] = (out[-1][0], hi, who)
            else:
                out.append((lo, hi, who))
        return tuple(out)
    # Overlapping claims: rare (a broken map); slot by slot is simplest and exact.
    owners: list[str | None] = [None] * SLOTS
    for lo, hi, who in clamped:
        owners[lo : hi + 1] = [who] * (hi - lo + 1)
    return tuple((lo, hi, who) for lo, hi, who in runs(owners) if who is not None)


def runs(owners: Sequence[str | None]) -> list[Segment]:
    """A slot -> owner list as (first, last, owner) runs."""
    out: list[Segment] = []
    start = 0
    for s in range(1, len(owners) + 1):
        if s == len(owners) or owners[s] != owners[start]:
            out.append((start, s - 1, owners[start]))
            start = s
    return out


def segments(owned: Sequence[OwnerRange]) -> list[Segment]:
    """An :func:`owner_ranges` map with its holes filled by ``None``: 0..16383 whole."""
    out: list[Segment] = []
    nxt = 0
    for lo, hi, who in owned:
        if lo > nxt:
            out.append((nxt, lo - 1, None))
        out.append((lo, hi, who))
        nxt = hi + 1
    if nxt < SLOTS:
        out.append((nxt, SLOTS - 1, None))
    return out


def differences(
    a: Sequence[OwnerRange], b: Sequence[OwnerRange]
) -> list[tuple[int, int, str | None, str | None]]:
    """Where two maps name different owners: (first, last, owner in a, owner in b)."""
    out: list[tuple[int, int, str | None, str | None]] = []
    if a == b:
        return out
    sa, sb = segments(a), segments(b)
    i = j = 0
    lo = 0
    while lo < SLOTS:
        _, ahi, aw = sa[i]
        _, bhi, bw = sb[j]
        hi = min(ahi, bhi)
        if aw != bw:
            if out and out[-1][1] == lo - 1 and out[-1][2:] == (aw, bw):
                out[-1] = (out[-1][0], hi, aw, bw)
            else:
                out.append((lo, hi, aw, bw))
        lo = hi + 1
        if ahi == hi:
            i += 1
        if bhi == hi:
            j += 1
    return out


def owners_within(segs: Sequence[Segment], lo: int, hi: int) -> set[str | None]:
    """Every owner of a slot in ``lo..hi`` (``None`` for unassigned slots), from a map's
    :func:`segments`."""
    i = bisect.bisect_right(segs, lo, key=lambda seg: seg[0]) - 1
    out: set[str | None] = set()
    while i < len(segs) and segs[i][0] <= hi:
        out.add(segs[i][2])
        i += 1
    return out
