"""Consistency checkers: a client history (and the fault timeline) in, a verdict out.

Jepsen-style, and pure: no I/O, no servers, so a failed run can be re-checked from its
JSONL history. ``info`` (unknown) outcomes are never treated as failures: an unknown add
that shows up in the final read is *recovered*, one that does not is no loss. Losses of
acknowledged writes are classified against the fault windows, because Redis Cluster
documents losing writes a cut-off master acknowledged, but never writes acknowledged
while nothing was broken.

Every checker is one or two passes over the ops plus sorting and bisection (O(n log n)):
histories of a million ops are checked in about a second. Linearizability is out of
scope on purpose: it does not scale to long chaos runs.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Literal

from harness.history import HEAL, INJECT, FaultEvent, History, Op

#: kinds of ops that change data (for availability and failover phases)
WRITE_KINDS = frozenset({"add", "write", "incr"})
#: end of a window that was never closed, when the checker is not told the history's end
OPEN_END = 2**63 - 1
#: node name of cluster-wide events (``partition`` / ``heal``)
CLUSTER = "cluster"

LossClass = Literal["before-faults", "in-window", "after-heal"]
LOSS_CLASSES: tuple[LossClass, ...] = ("before-faults", "in-window", "after-heal")

#: which injected faults each healing action ends (on the same node). ``<x>-healed``
#: ends ``<x>``; a ``heal`` of node "cluster" ends every network fault, because
#: ``Faults.heal`` removes all drops and reconnects isolated nodes in one step.
_CLOSES: dict[str, frozenset[str]] = {
    "start": frozenset({"kill", "stop", "crash-restart", "pause"}),  # a fresh process
    "resume": frozenset({"pause"}),
    "rejoin": frozenset({"isolate"}),
    "heal": frozenset({"partition", "drop", "isolate"}),
}


def _ms(ns: int) -> float:
    return ns / 1e6


def _rel(ns: int, origin_ns: int) -> str:
    return f"{(ns - origin_ns) / 1e6:+.1f} ms"


def _history_end(history: History) -> int:
    """Latest time seen in the history: where unclosed windows end."""
    end = max((max(o.complete_ns, o.invoke_ns) for o in history.ops), default=0)
    return max(end, max((e.t_ns for e in history.events), default=0))


# -- fault windows --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """A fault in effect from its injection to its healing (``closed`` False: never
    healed, ``end_ns`` is then the history's end)."""

    start_ns: int
    end_ns: int
    action: str
    node: str
    closed: bool = True

    def describe(self, origin_ns: int | None = None) -> str:
        origin = self.start_ns if origin_ns is None else origin_ns
        end = _rel(self.end_ns, origin) if self.closed else "end (never healed)"
        return f"{self.action} {self.node} {_rel(self.start_ns, origin)} → {end}"


def _heals(action: str) -> frozenset[str]:
    if action.endswith("-healed"):
        return frozenset({action[: -len("-healed")]})
    return _CLOSES.get(action, frozenset())


def fault_windows(events: Iterable[FaultEvent], end_ns: int | None = None) -> list[Window]:
    """Pair every INJECT event with the first later HEAL of the same node that undoes it.

    Windows may nest and overlap (two nodes killed, a partition during a pause). A heal
    closes every matching open window, because undoing is idempotent: one ``start`` ends
    a node's kill however often it was killed, one ``heal`` every partition. Windows
    never closed end at ``end_ns`` (default :data:`OPEN_END`). Sorted by start."""
    ordered = sorted(events, key=lambda e: e.t_ns)
    open_: list[FaultEvent] = []
    out: list[Window] = []
    for ev in ordered:
        if ev.action in INJECT:
            open_.append(ev)
        elif ev.action in HEAL:
            ends = _heals(ev.action)
            cluster_wide = ev.node == CLUSTER
            still: list[FaultEvent] = []
            for o in open_:
                if o.action in ends and (cluster_wide or o.node == ev.node):
                    out.append(Window(o.t_ns, ev.t_ns, o.action, o.node))
                else:
                    still.append(o)
            open_ = still
    last = OPEN_END if end_ns is None else end_ns
    out += [Window(o.t_ns, max(last, o.t_ns), o.action, o.node, closed=False) for o in open_]
    out.sort(key=lambda w: (w.start_ns, w.end_ns))
    return out


def _windows_for(history: History) -> list[Window]:
    windows = fault_windows(history.events)
    if any(not w.closed for w in windows):
        windows = fault_windows(history.events, _history_end(history))
    return windows


class _Classifier:
    """Union of the fault windows as sorted disjoint [start, end) spans, for bisection.
    A window never healed stays open for good, even past the history's last op."""

    def __init__(self, windows: Sequence[Window]) -> None:
        starts: list[int] = []
        ends: list[int] = []
        for w in sorted(windows, key=lambda w: w.start_ns):
            end = w.end_ns if w.closed else OPEN_END
            if ends and w.start_ns <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(w.start_ns)
                ends.append(end)
        self.starts = starts
        self.ends = ends

    def __call__(self, invoke_ns: int, complete_ns: int) -> LossClass:
        """Class of an operation that ran from ``invoke_ns`` to ``complete_ns``: inside a
        window when the two overlap. An add in flight across a heal counts as inside: a
        paused master answers what it received while frozen the moment it resumes, before
        it learns it was replaced, so that ack comes from the fault, not after it."""
        starts = self.starts
        if not starts or complete_ns < starts[0]:
            return "before-faults"
        i = bisect_right(starts, complete_ns) - 1
        return "in-window" if invoke_ns < self.ends[i] else "after-heal"


def _final_reads(ops: Iterable[Op], accept: Callable[[Any], bool]) -> dict[str, Op]:
    """The last successful final read per key (the state after healing)."""
    out: dict[str, Op] = {}
    for o in ops:
        if o.kind == "final-read" and o.outcome == "ok" and accept(o.value):
            prev = out.get(o.key)
            if prev is None or o.complete_ns >= prev.complete_ns:
                out[o.key] = o
    return out


def _is_collection(value: Any) -> bool:
    return value is None or isinstance(value, list | tuple | set | frozenset)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


# -- set workload ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LostWrite:
    """An acknowledged add missing from the final read; ``t_ms`` is the ack time and
    ``sent_ms`` the invoke time, both relative to the result's origin (the first fault);
    ``node`` answered it."""

    op_id: int
    key: str
    value: Any
    ack_ns: int
    t_ms: float
    cls: LossClass
    sent_ms: float = 0.0
    node: str | None = None

    def describe(self) -> str:
        by = f" by {self.node}" if self.node else ""
        return (
            f"op {self.op_id} key {self.key!r} value {self.value!r} sent {self.sent_ms:+.1f} "
            f"acked {self.t_ms:+.1f} ms{by}"
        )


@dataclass(frozen=True, slots=True)
class LossSummary:
    """Losses of one class: how many, when the first and last were acknowledged."""

    count: int = 0
    first_ms: float | None = None
    last_ms: float | None = None
    examples: tuple[LostWrite, ...] = ()


@dataclass(frozen=True)
class SetResult:
    """Verdict of the set workload. ``ok``: no acknowledged add lost, nothing in a final
    read that was never added, no definitely failed add present."""

    adds: int
    acknowledged: int
    unknown_writes: int
    failed: int
    recovered: int
    lost: dict[LossClass, LossSummary]
    unexpected_count: int
    unexpected: tuple[tuple[str, Any], ...]  # examples (key, value)
    failed_present_count: int
    failed_present: tuple[tuple[int, str, Any], ...]  # examples (op id, key, value)
    never_read: tuple[str, ...]  # keys with adds but no successful final read
    never_read_acknowledged: int  # acknowledged adds on those keys (not counted as lost)
    windows: tuple[Window, ...]
    origin_ns: int  # the first fault, or the first op when there was none
    origin: str  # "first fault" | "first op"

    @property
    def lost_count(self) -> int:
        return sum(s.count for s in self.lost.values())

    @property
    def ok(self) -> bool:
        return not (self.lost_count or self.unexpected_count or self.failed_present_count)

    def describe(self) -> str:
        lines = [
            f"set: {self.adds} adds ({self.acknowledged} ok, {self.unknown_writes} unknown, "
            f"{self.failed} failed); {self.recovered} unknown adds recovered; "
            f"{len(self.windows)} fault windows; times are ms after the {self.origin}"
        ]
        lines += [f"  window {w.describe(self.origin_ns)}" for w in self.windows]
        n = self.lost_count
        if n:
            parts = ", ".join(f"{c} {s.count}" for c, s in self.lost.items())
            lines.append(f"LOST {n} acknowledged adds: {parts}")
            for cls, s in self.lost.items():
                if not s.count:
                    continue
                lines.append(f"  {cls}: acked from {s.first_ms:+.1f} to {s.last_ms:+.1f} ms")
                lines += [f"    {e.describe()}" for e in s.examples]
        else:
            lines.append("no acknowledged add lost")
        if self.unexpected_count:
            ex = ", ".join(f"{k!r}:{v!r}" for k, v in self.unexpected)
            lines.append(f"UNEXPECTED {self.unexpected_count} values never added, e.g. {ex}")
        if self.failed_present_count:
            ex = ", ".join(f"op {i} {k!r}:{v!r}" for i, k, v in self.failed_present)
            lines.append(
                f"FAILED BUT PRESENT {self.failed_present_count} adds that got a definite "
                f"error are in the final read, e.g. {ex}"
            )
        if self.never_read:
            keys = ", ".join(repr(k) for k in self.never_read[:10])
            more = " …" if len(self.never_read) > 10 else ""
            lines.append(
                f"never read (not counted as lost): {len(self.never_read)} keys with "
                f"{self.never_read_acknowledged} acknowledged adds: {keys}{more}"
            )
        return "\n".join(lines)


def check_set(history: History, examples: int = 10) -> SetResult:
    """Acknowledged adds against the final read of their key.

    A key's final read is its last successful ``final-read``; keys without one are
    reported, not counted as losses (nothing proves the data is gone). ``examples``
    bounds the examples kept per loss class and per anomaly."""
    ops = history.ops
    finals = _final_reads(ops, _is_collection)
    # per key: (final values, values not yet matched by an add: the unexpected ones)
    state: dict[str, tuple[set[Any], set[Any]]] = {}
    for k, o in finals.items():
        values = set(o.value or ())
        state[k] = (values, set(values))
    lost_ops: list[Op] = []
    failed_present: list[Op] = []
    never: dict[str, int] = {}
    adds = acked = info = failed = recovered = 0
    first_invoke = OPEN_END
    for o in ops:
        if o.kind != "add":
            continue
        adds += 1
        if o.invoke_ns < first_invoke:
            first_invoke = o.invoke_ns
        outcome = o.outcome
        st = state.get(o.key)
        if st is None:
            n = never.get(o.key, 0)
            if outcome == "ok":
                acked += 1
                n += 1
            elif outcome == "info":
                info += 1
            else:
                failed += 1
            never[o.key] = n
            continue
        v = o.value
        present = v in st[0]
        if present:
            st[1].discard(v)
        if outcome == "ok":
            acked += 1
            if not present:
                lost_ops.append(o)
        elif outcome == "info":
            info += 1
            if present:
                recovered += 1
        else:
            failed += 1
            if present:
                failed_present.append(o)

    windows = _windows_for(history)
    if windows:
        origin_ns, origin = windows[0].start_ns, "first fault"
    else:
        origin_ns, origin = (first_invoke if adds else 0), "first op"
    classify = _Classifier(windows)
    by_class: dict[LossClass, list[Op]] = {c: [] for c in LOSS_CLASSES}
    for o in lost_ops:
        by_class[classify(o.invoke_ns, o.complete_ns)].append(o)
    lost: dict[LossClass, LossSummary] = {}
    for cls, group in by_class.items():
        if not group:
            lost[cls] = LossSummary()
            continue
        group.sort(key=lambda o: o.complete_ns)
        ex = tuple(
            LostWrite(
                o.id,
                o.key,
                o.value,
                o.complete_ns,
                _ms(o.complete_ns - origin_ns),
                cls,
                _ms(o.invoke_ns - origin_ns),
                o.node,
            )
            for o in group[:examples]
        )
        lost[cls] = LossSummary(
            len(group),
            _ms(group[0].complete_ns - origin_ns),
            _ms(group[-1].complete_ns - origin_ns),
            ex,
        )
    unexpected: list[tuple[str, Any]] = []
    unexpected_count = 0
    for k in sorted(state):
        rest = state[k][1]
        unexpected_count += len(rest)
        if len(unexpected) < examples:
            unexpected += [(k, v) for v in sorted(rest, key=repr)[: examples - len(unexpected)]]
    failed_present.sort(key=lambda o: o.complete_ns)
    return SetResult(
        adds=adds,
        acknowledged=acked,
        unknown_writes=info,
        failed=failed,
        recovered=recovered,
        lost=lost,
        unexpected_count=unexpected_count,
        unexpected=tuple(unexpected),
        failed_present_count=len(failed_present),
        failed_present=tuple((o.id, o.key, o.value) for o in failed_present[:examples]),
        never_read=tuple(sorted(never)),
        never_read_acknowledged=sum(never.values()),
        windows=tuple(windows),
        origin_ns=origin_ns,
        origin=origin,
    )


# -- counter workload -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CounterViolation:
    key: str
    final: int
    lower: int  # sum of acknowledged increments
    upper: int  # lower + sum of unknown increments

    def describe(self) -> str:
        side = "below" if self.final < self.lower else "above"
        return (
            f"key {self.key!r}: final value {self.final} is {side} the bounds "
            f"[{self.lower}, {self.upper}] (acknowledged, acknowledged + unknown)"
        )


@dataclass(frozen=True)
class CounterResult:
    """Verdict of the counter workload: every final value lies between the sum of the
    acknowledged increments and that plus the unknown ones."""

    keys: int
    increments: int
    acknowledged: int
    unknown_writes: int
    violations: tuple[CounterViolation, ...]
    never_read: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        lines = [
            f"counter: {self.increments} increments on {self.keys} keys ({self.acknowledged} "
            f"ok, {self.unknown_writes} unknown); {len(self.violations)} keys out of bounds"
        ]
        lines += ["  " + v.describe() for v in self.violations]
        if self.never_read:
            lines.append(f"never read: {', '.join(repr(k) for k in self.never_read)}")
        return "\n".join(lines)


def check_counter(history: History) -> CounterResult:
    """Final counter values against [sum of ok incrs, sum of ok + info incrs] per key.
    A missing key reads as 0 (``None`` final value)."""
    ops = history.ops
    finals = _final_reads(ops, _is_number)
    lower: dict[str, int] = {}
    unknown: dict[str, int] = {}
    increments = acked = info = 0
    for o in ops:
        if o.kind != "incr":
            continue
        increments += 1
        k = o.key
        if o.outcome == "ok":
            acked += 1
            lower[k] = lower.get(k, 0) + o.value
        elif o.outcome == "info":
            info += 1
            unknown[k] = unknown.get(k, 0) + o.value
        else:
            lower.setdefault(k, 0)
    keys = set(lower) | set(unknown) | set(finals)
    violations: list[CounterViolation] = []
    for k in sorted(keys):
        fin = finals.get(k)
        if fin is None:
            continue
        final = fin.value or 0
        lo = lower.get(k, 0)
        hi = lo + unknown.get(k, 0)
        if not lo <= final <= hi:
            violations.append(CounterViolation(k, final, lo, hi))
    return CounterResult(
        keys=len(keys),
        increments=increments,
        acknowledged=acked,
        unknown_writes=info,
        violations=tuple(violations),
        never_read=tuple(sorted(keys - set(finals))),
    )


# -- register workload ----------------------------------------------------------------


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
                stale.append(StaleRead(r.id, k, v, top, wid, _ms(r.invoke_ns - t)))
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


# -- availability ---------------------------------------------------------------------


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
        return _ms(self.end_ns - self.start_ns)


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
            f"  {_rel(w.start_ns, origin)} → "
            + (_rel(w.end_ns, origin) if w.closed else "end (never recovered)")
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


# -- failover phases ------------------------------------------------------------------


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
    history: History, events: Iterable[FaultEvent], fault_ns: int, slots: AbstractSet[int]
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
        return None if t is None else _ms(t - fault_ns)

    return Phases(fault_ns, rel(first_err), rel(fail_flag), rel(promoted), rel(first_ok))


# -- summary --------------------------------------------------------------------------


def summarise(
    set_result: SetResult | None = None,
    counter: CounterResult | None = None,
    register: RegisterResult | None = None,
    unavailable: Mapping[str, Unavailable] | None = None,
) -> dict[str, int | float]:
    """Flat numbers for ``metrics.record`` / summary.json, from whichever checkers ran
    (keys of checkers that did not run are left out, not reported as 0)."""
    out: dict[str, int | float] = {}
    unknown = 0
    unexpected = 0
    if set_result is not None:
        lost = set_result.lost
        out["lost_acked_writes"] = set_result.lost_count
        out["recovered_unknown"] = set_result.recovered
        out["lost_before_faults"] = lost["before-faults"].count
        out["lost_in_window"] = lost["in-window"].count
        out["lost_after_heal"] = lost["after-heal"].count
        out["failed_present"] = set_result.failed_present_count
        unknown += set_result.unknown_writes
        unexpected += set_result.unexpected_count
    if counter is not None:
        out["counter_violations"] = len(counter.violations)
        unknown += counter.unknown_writes
    if register is not None:
        out["stale_reads"] = register.stale_count
        out["failed_read"] = register.failed_read_count
        unknown += register.unknown_writes
        unexpected += register.unexpected_count
    if set_result is not None or counter is not None or register is not None:
        out["unknown_writes"] = unknown
    if set_result is not None or register is not None:
        out["unexpected"] = unexpected
    if unavailable is not None:
        out["unavailable_ms"] = round(max((u.total_ms for u in unavailable.values()), default=0), 1)
    return out


__all__ = [
    "LOSS_CLASSES",
    "OPEN_END",
    "WRITE_KINDS",
    "CounterResult",
    "CounterViolation",
    "LossSummary",
    "LostWrite",
    "Outage",
    "Phases",
    "RegisterResult",
    "SetResult",
    "StaleRead",
    "Unavailable",
    "Window",
    "availability",
    "check_counter",
    "check_register",
    "check_set",
    "failover_phases",
    "fault_windows",
    "summarise",
]
