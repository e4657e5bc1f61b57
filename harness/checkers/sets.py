"""The set workload's checker: acknowledged adds against the final read of each key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checkers.windows import (
    LOSS_CLASSES,
    OPEN_END,
    Classifier,
    LossClass,
    Window,
    final_reads,
    is_collection,
    ms,
    windows_for,
)
from harness.history import History, Op


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


def check_set(history: History, examples: int = 10, grace_ns: int = 0) -> SetResult:
    """Acknowledged adds against the final read of their key.

    A key's final read is its last successful ``final-read``; keys without one are
    reported, not counted as losses (nothing proves the data is gone). ``examples``
    bounds the examples kept per loss class and per anomaly; ``grace_ns`` is the
    replication grace of :func:`~harness.checkers.windows.fault_windows`."""
    ops = history.ops
    finals = final_reads(ops, is_collection)
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

    windows = windows_for(history, grace_ns)
    if windows:
        origin_ns, origin = windows[0].start_ns, "first fault"
    else:
        origin_ns, origin = (first_invoke if adds else 0), "first op"
    classify = Classifier(windows)
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
                ms(o.complete_ns - origin_ns),
                cls,
                ms(o.invoke_ns - origin_ns),
                o.node,
            )
            for o in group[:examples]
        )
        lost[cls] = LossSummary(
            len(group),
            ms(group[0].complete_ns - origin_ns),
            ms(group[-1].complete_ns - origin_ns),
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
