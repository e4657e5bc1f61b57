"""The standard history checkers behind the :class:`~harness.checkers.base.Checker`
interface, and :func:`summarise`, the flat figures of their results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from harness.checkers.availability import Unavailable, availability, failover_phases
from harness.checkers.base import Figures, Result
from harness.checkers.counter import CounterResult, check_counter
from harness.checkers.register import RegisterResult, check_register
from harness.checkers.sets import SetResult, check_set
from harness.history import History

#: Replication is asynchronous: a write acknowledged this shortly before a master stops
#: may not have reached its replica, so such a loss counts as inside the fault's window.
REPLICATION_GRACE_MS = 50.0


@dataclass(frozen=True)
class SetChecker:
    """Set workload. Invalid when an acknowledged add is lost outside every fault window
    (or anywhere, with ``allow_in_window=False``: for faults that must lose nothing, such
    as a coordinated manual failover), or when a final read shows a value never added or
    one whose add definitely failed. ``grace_ms``: the replication grace."""

    grace_ms: float = REPLICATION_GRACE_MS
    allow_in_window: bool = True
    name: str = "set"

    def check(self, history: History) -> Result:
        r = check_set(history, grace_ns=round(self.grace_ms * 1e6))
        outside = r.lost["before-faults"].count + r.lost["after-heal"].count
        lost = outside if self.allow_in_window else r.lost_count
        bad = lost or r.unexpected_count or r.failed_present_count
        return Result(self.name, "invalid" if bad else "valid", summarise(r), r.describe(), r)


def _judged(name: str, r: CounterResult | RegisterResult, figures: Figures) -> Result:
    """The verdict of a checker whose result says itself whether it is ok."""
    return Result(name, "valid" if r.ok else "invalid", figures, r.describe(), r)


@dataclass(frozen=True)
class CounterChecker:
    """Counter workload: invalid when a final value leaves its bounds."""

    name: str = "counter"

    def check(self, history: History) -> Result:
        r = check_counter(history)
        return _judged(self.name, r, summarise(counter=r))


@dataclass(frozen=True)
class RegisterChecker:
    """Register workload: invalid on a stale read, a read of a value never written or of
    a write that definitely failed."""

    name: str = "register"

    def check(self, history: History) -> Result:
        r = check_register(history)
        return _judged(self.name, r, summarise(register=r))


@dataclass(frozen=True)
class AvailabilityChecker:
    """Write availability per shard (``shard_of`` maps a slot to its shard's name): a
    measurement (``unavailable_ms``), not a verdict, since Redis Cluster promises no
    availability during a fault; unknown when the history has no writes to measure."""

    shard_of: Callable[[int], str]
    name: str = "availability"

    def check(self, history: History) -> Result:
        u = availability(history, self.shard_of)
        if not u:
            return Result(self.name, "unknown", {}, "no writes in the history")
        text = "\n".join(s.describe() for s in u.values())
        return Result(self.name, "valid", summarise(unavailable=u), text, u)


@dataclass(frozen=True)
class FailoverChecker:
    """The phases of the failover that the first ``fault`` event on ``node`` (any node
    when None) caused on ``slots``: invalid when writes to those slots never resumed,
    unknown when the history has no such fault. Figures: the phases and
    ``failover_ms`` (fault to first acknowledged write)."""

    slots: AbstractSet[int]
    fault: str = "kill"
    node: str | None = None
    name: str = "failover"

    def check(self, history: History) -> Result:
        at = [
            e.t_ns
            for e in history.events
            if e.action == self.fault and (self.node is None or e.node == self.node)
        ]
        if not at:
            return Result(self.name, "unknown", {}, f"no {self.fault} event in the history")
        p = failover_phases(history, history.events, min(at), self.slots)
        figures: dict[str, int | float] = dict(p.as_metrics())
        if p.first_ok_ms is not None:
            figures["failover_ms"] = round(p.first_ok_ms, 1)
        return Result(self.name, "valid" if p.ok else "invalid", figures, p.describe(), p)


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
