"""Write availability per shard, and the phases of a failover, from the history."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from harness.checkers.windows import WRITE_KINDS, ms, rel
from harness.history import Event, History


@dataclass(frozen=True, slots=True)
class Outage:
    """Writes to a shard failed or were unknown from ``start_ns`` (the first such
    write's invocation) until ``end_ns`` (the next acknowledged write's completion, or
    the history's end when ``closed`` is False)."""

    start_ns: int
    end_ns: int
    failed_writes: int
    closed: bool = True

    @property
    def ms(self) -> float:
        return ms(self.end_ns - self.start_ns)


@dataclass(frozen=True)
class Unavailable:
    """Write availability of one shard. ``ok``: writes were accepted again at the end."""

    shard: str
    writes: int
    failed_writes: int
    windows: tuple[Outage, ...]

    @property
    def total_ms(self) -> float:
        return sum(w.ms for w in self.windows)

    @property
    def ok(self) -> bool:
        return all(w.closed for w in self.windows)

    def describe(self, origin_ns: int | None = None, limit: int = 10) -> str:
        """Totals, then the ``limit`` longest windows in time order (a lone timeout is
        a window too, so there may be many)."""
        head = (
            f"shard {self.shard}: {self.failed_writes} of {self.writes} writes failed or "
            f"unknown, unavailable {self.total_ms:.1f} ms in {len(self.windows)} windows"
        )
        origin = origin_ns if origin_ns is not None else 0
        longest = sorted(self.windows, key=lambda w: w.start_ns - w.end_ns)[:limit]
        parts = [
            f"  {rel(w.start_ns, origin)} → "
            + (rel(w.end_ns, origin) if w.closed else "end (never recovered)")
            + f" ({w.ms:.1f} ms, {w.failed_writes} writes)"
            for w in sorted(longest, key=lambda w: w.start_ns)
        ]
        if len(self.windows) > len(longest) > 0:
            parts.append(f"  … and {len(self.windows) - len(longest)} shorter windows")
        return "\n".join([head, *parts])


def availability(history: History, shard_of_slot: Callable[[int], str]) -> dict[str, Unavailable]:
    """Per shard (every shard that received writes), the spans during which its writes
    were not accepted: from the invocation of a failed or unknown write to the
    completion of the first acknowledged write after it. Invocation opens the span so
    that timeouts (which complete late) count from when the shard stopped answering."""
    ok_by_slot: dict[int, list[int]] = {}
    bad_by_slot: dict[int, list[int]] = {}
    end = 0
    for o in history.ops:
        if o.kind not in WRITE_KINDS:
            continue
        c = o.complete_ns
        if c > end:
            end = c
        if o.outcome == "ok":
            lst = ok_by_slot.get(o.slot)
            if lst is None:
                lst = ok_by_slot[o.slot] = []
            lst.append(c)
        else:
            lst = bad_by_slot.get(o.slot)
            if lst is None:
                lst = bad_by_slot[o.slot] = []
            lst.append(o.invoke_ns)
            if o.invoke_ns > end:
                end = o.invoke_ns
    oks: dict[str, list[int]] = {}
    bads: dict[str, list[int]] = {}
    for src, dst in ((ok_by_slot, oks), (bad_by_slot, bads)):
        for slot, times in src.items():
            shard = shard_of_slot(slot)
            have = dst.get(shard)
            if have is None:
                dst[shard] = times
            else:
                have += times
    out: dict[str, Unavailable] = {}
    for shard in sorted(set(oks) | set(bads)):
        ok_t = oks.get(shard, [])
        bad_t = bads.get(shard, [])
        ok_t.sort()
        bad_t.sort()
        windows: list[Outage] = []
        i = 0
        while i < len(bad_t):
            start = bad_t[i]
            j = bisect_right(ok_t, start)
            if j == len(ok_t):
                windows.append(Outage(start, max(end, start), len(bad_t) - i, closed=False))
                break
            stop = ok_t[j]
            n = bisect_left(bad_t, stop, i) - i
            windows.append(Outage(start, stop, n))
            i += n
        out[shard] = Unavailable(shard, len(ok_t) + len(bad_t), len(bad_t), tuple(windows))
    return out


@dataclass(frozen=True)
class Phases:
    """Milliseconds from a fault to each step of the failover it caused (None: not
    observed). ``ok``: writes to the affected slots were accepted again."""

    fault_ns: int
    first_error_ms: float | None
    fail_flag_ms: float | None
    promoted_ms: float | None
    first_ok_ms: float | None

    @property
    def ok(self) -> bool:
        return self.first_ok_ms is not None

    def describe(self) -> str:
        def f(v: float | None) -> str:
            return "not observed" if v is None else f"{v:+.1f} ms"

        return (
            f"after the fault: first client error {f(self.first_error_ms)}, FAIL flag "
            f"{f(self.fail_flag_ms)}, replica promoted {f(self.promoted_ms)}, first "
            f"acknowledged write {f(self.first_ok_ms)}"
        )

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        named = {
            "first_error_ms": self.first_error_ms,
            "fail_flag_ms": self.fail_flag_ms,
            "promoted_ms": self.promoted_ms,
            "first_ok_ms": self.first_ok_ms,
        }
        return {prefix + k: round(v, 1) for k, v in named.items() if v is not None}


def failover_phases(
    history: History, events: Iterable[Event], fault_ns: int, slots: AbstractSet[int]
) -> Phases:
    """Phases of the failover after ``fault_ns`` on ``slots``.

    The first error is the earliest completion of a failed or unknown op on those slots
    after the fault. The first acknowledged write is the earliest write invoked at or
    after the fault and completed after that first error: a cut-off master may keep
    acknowledging writes until clients notice, and those do not end the outage."""
    first_err: int | None = None
    for o in history.ops:
        if o.outcome != "ok" and o.complete_ns >= fault_ns and o.slot in slots:
            c = o.complete_ns
            if first_err is None or c < first_err:
                first_err = c
    after = fault_ns if first_err is None else first_err
    first_ok: int | None = None
    for o in history.ops:
        if (
            o.outcome == "ok"
            and o.kind in WRITE_KINDS
            and o.invoke_ns >= fault_ns
            and o.complete_ns >= after
            and o.slot in slots
            and (first_ok is None or o.complete_ns < first_ok)
        ):
            first_ok = o.complete_ns
    fail_flag: int | None = None
    promoted: int | None = None
    for e in events:
        if e.t_ns < fault_ns:
            continue
        if e.action == "fail-flag" and (fail_flag is None or e.t_ns < fail_flag):
            fail_flag = e.t_ns
        elif e.action == "promoted" and (promoted is None or e.t_ns < promoted):
            promoted = e.t_ns

    def rel(t: int | None) -> float | None:
        return None if t is None else ms(t - fault_ns)

    return Phases(fault_ns, rel(first_err), rel(fail_flag), rel(promoted), rel(first_ok))
