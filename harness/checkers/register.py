"""The register workload's checker: stale reads, reads of values never written, reads of
writes that definitely failed."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from harness.checkers.windows import ms
from harness.history import History, Op


@dataclass(frozen=True, slots=True)
class StaleRead:
    """A read that returned ``read`` although version ``newest`` had been acknowledged
    ``behind_ms`` before the read was sent."""

    op_id: int
    key: str
    read: int | None
    newest: int
    newest_write_id: int
    behind_ms: float

    def describe(self) -> str:
        return (
            f"op {self.op_id} key {self.key!r} read {self.read!r}, but version {self.newest} "
            f"(op {self.newest_write_id}) was acknowledged {self.behind_ms:.1f} ms before"
        )


@dataclass(frozen=True)
class RegisterResult:
    """Verdict of the register workload: no stale read (older than a version whose write
    completed before the read began), no read of a value never written, none of a write
    that definitely failed."""

    reads: int
    writes: int
    unknown_writes: int
    stale_count: int
    stale: tuple[StaleRead, ...]  # examples, the most stale first
    unexpected_count: int
    unexpected: tuple[tuple[int, str, Any], ...]  # examples (op id, key, value)
    failed_read_count: int
    failed_read: tuple[tuple[int, str, Any], ...]  # examples (op id, key, value)

    @property
    def ok(self) -> bool:
        return not (self.stale_count or self.unexpected_count or self.failed_read_count)

    def describe(self) -> str:
        lines = [
            f"register: {self.reads} ok reads, {self.writes} writes "
            f"({self.unknown_writes} unknown); {self.stale_count} stale reads"
        ]
        lines += ["  " + s.describe() for s in self.stale]
        if self.unexpected_count:
            ex = ", ".join(f"op {i} {k!r}={v!r}" for i, k, v in self.unexpected)
            lines.append(f"UNEXPECTED {self.unexpected_count} reads of values never written: {ex}")
        if self.failed_read_count:
            ex = ", ".join(f"op {i} {k!r}={v!r}" for i, k, v in self.failed_read)
            lines.append(
                f"FAILED BUT READ {self.failed_read_count} reads of writes that got a "
                f"definite error: {ex}"
            )
        return "\n".join(lines)


_RANK = {"fail": 0, "info": 1, "ok": 2}


def check_register(history: History, examples: int = 10) -> RegisterResult:
    """Stale and impossible reads, per key, in O(n log n): the acknowledged writes of a
    key sorted by completion with a running maximum of their versions; each read
    bisects for the writes completed strictly before it was invoked. A read concurrent
    with a write may return either version, so it is never stale for that write."""
    acked: dict[str, list[tuple[int, int, int]]] = {}  # key -> [(complete, version, id)]
    attempted: dict[str, dict[Any, str]] = {}  # key -> version -> best outcome
    reads: list[Op] = []
    writes = info = 0
    for o in history.ops:
        kind = o.kind
        if kind == "read":
            if o.outcome == "ok":
                reads.append(o)
        elif kind == "write":
            writes += 1
            k = o.key
            outcome = o.outcome
            seen = attempted.get(k)
            if seen is None:
                seen = attempted[k] = {}
            prev = seen.get(o.value)
            if prev is None or _RANK[outcome] > _RANK[prev]:
                seen[o.value] = outcome
            if outcome == "ok":
                lst = acked.get(k)
                if lst is None:
                    lst = acked[k] = []
                lst.append((o.complete_ns, o.value, o.id))
            elif outcome == "info":
                info += 1
    # per key: completion times, and the position of the newest version acked by then
    index: dict[str, tuple[list[tuple[int, int, int]], list[int], list[int]]] = {}
    for k, lst in acked.items():
        lst.sort()
        times: list[int] = []
        newest: list[int] = []
        top = -1
        for pos, (t, v, _) in enumerate(lst):
            if top < 0 or v > lst[top][1]:
                top = pos
            times.append(t)
            newest.append(top)
        index[k] = (lst, times, newest)
    stale: list[StaleRead] = []
    stale_count = 0
    unexpected: list[Op] = []
    failed_read: list[Op] = []
    empty: dict[Any, str] = {}
    for r in reads:
        k = r.key
        v = r.value
        if v is not None:
            wrote = attempted.get(k, empty).get(v)
            if wrote is None:
                unexpected.append(r)
            elif wrote == "fail":
                failed_read.append(r)
        idx = index.get(k)
        if idx is None:
            continue
        n = bisect_left(idx[1], r.invoke_ns)
        if n:
            t, top, wid = idx[0][idx[2][n - 1]]
            if v is None or v < top:
                stale_count += 1
                stale.append(StaleRead(r.id, k, v, top, wid, ms(r.invoke_ns - t)))
    stale.sort(key=lambda s: -s.behind_ms)
    return RegisterResult(
        reads=len(reads),
        writes=writes,
        unknown_writes=info,
        stale_count=stale_count,
        stale=tuple(stale[:examples]),
        unexpected_count=len(unexpected),
        unexpected=tuple((o.id, o.key, o.value) for o in unexpected[:examples]),
        failed_read_count=len(failed_read),
        failed_read=tuple((o.id, o.key, o.value) for o in failed_read[:examples]),
    )
