"""Fault windows from the timeline, and the helpers every history checker shares.

A window runs from a fault's injection to the event that heals it, as the fault kinds
declare (:mod:`harness.faults.kinds`); losses of acknowledged writes are classified
against the windows, because Redis Cluster documents losing writes a cut-off master
acknowledged, but never writes acknowledged while nothing was broken."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.faults import kinds
from harness.faults.kinds import CLUSTER
from harness.history import Event, History, Op

#: kinds of ops that change data (for availability and failover phases)
WRITE_KINDS = frozenset({"add", "write", "incr"})
#: end of a window that was never closed, when the checker is not told the history's end
OPEN_END = 2**63 - 1

LossClass = Literal["before-faults", "in-window", "after-heal"]
LOSS_CLASSES: tuple[LossClass, ...] = ("before-faults", "in-window", "after-heal")


def ms(ns: int) -> float:
    return ns / 1e6


def rel(ns: int, origin_ns: int) -> str:
    return f"{(ns - origin_ns) / 1e6:+.1f} ms"


def history_end(history: History) -> int:
    """Latest time seen in the history: where unclosed windows end."""
    end = max((max(o.complete_ns, o.invoke_ns) for o in history.ops), default=0)
    return max(end, max((e.t_ns for e in history.events), default=0))


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
        end = rel(self.end_ns, origin) if self.closed else "end (never healed)"
        return f"{self.action} {self.node} {rel(self.start_ns, origin)} → {end}"


def fault_windows(
    events: Iterable[Event], end_ns: int | None = None, grace_ns: int = 0
) -> list[Window]:
    """Pair every event that opens a window (its kind declares ``window``) with the
    first later event of the same node, or a cluster-wide one, that heals it.

    Windows may nest and overlap (two nodes killed, a partition during a pause). A heal
    closes every matching open window, because undoing is idempotent: one ``start`` ends
    a node's kill however often it was killed, one ``heal`` every partition. Windows
    never closed end at ``end_ns`` (default :data:`OPEN_END`). ``grace_ns`` opens the
    windows of kinds that declare ``replication_grace`` that much earlier: replication
    is asynchronous, so a write acknowledged just before a master stops may never have
    reached its replica. Sorted by start."""
    ordered = sorted(events, key=lambda e: e.t_ns)
    open_: list[Event] = []
    out: list[Window] = []
    heal_actions = kinds.heal_actions()

    def start(ev: Event) -> int:
        kind = kinds.get(ev.action)
        return ev.t_ns - grace_ns if kind is not None and kind.replication_grace else ev.t_ns

    for ev in ordered:
        if kinds.opens_window(ev.action):
            open_.append(ev)
        elif ev.action in heal_actions:
            ends = kinds.closes(ev.action)
            cluster_wide = ev.node == CLUSTER
            still: list[Event] = []
            for o in open_:
                if o.action in ends and (cluster_wide or o.node == ev.node):
                    out.append(Window(start(o), ev.t_ns, o.action, o.node))
                else:
                    still.append(o)
            open_ = still
    last = OPEN_END if end_ns is None else end_ns
    out += [Window(start(o), max(last, o.t_ns), o.action, o.node, closed=False) for o in open_]
    out.sort(key=lambda w: (w.start_ns, w.end_ns))
    return out


def windows_for(history: History, grace_ns: int = 0) -> list[Window]:
    windows = fault_windows(history.events, grace_ns=grace_ns)
    if any(not w.closed for w in windows):
        windows = fault_windows(history.events, history_end(history), grace_ns)
    return windows


class Classifier:
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


def final_reads(ops: Iterable[Op], accept: Callable[[Any], bool]) -> dict[str, Op]:
    """The last successful final read per key (the state after healing)."""
    out: dict[str, Op] = {}
    for o in ops:
        if o.kind == "final-read" and o.outcome == "ok" and accept(o.value):
            prev = out.get(o.key)
            if prev is None or o.complete_ns >= prev.complete_ns:
                out[o.key] = o
    return out


def is_collection(value: Any) -> bool:
    return value is None or isinstance(value, list | tuple | set | frozenset)


def is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))
