"""The counter workload's checker: every final value between the sum of acknowledged
increments and that plus the unknown ones (Jepsen's counter)."""

from __future__ import annotations

from dataclasses import dataclass

from harness.checkers.windows import final_reads, is_number
from harness.history import History


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
    finals = final_reads(ops, is_number)
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
