"""Shared steps of the scaling suite: a workload run whose faults see the workload, the
account of what the client's redirect handling left, and the redirections the servers
sent (``INFO errorstats``).

A cluster client is expected to follow ``MOVED`` and ``ASK`` itself (and to retry
``TRYAGAIN``, which only multi-key commands get): the recorded workload records one
outcome per operation, after that handling. So during a sound migration every
operation ends ``ok``; what does not is *left over*, and the verdict names it. A strict
verdict allows no unknown outcome (a write that may or may not have happened) and no
redirection left unfollowed; other definite errors (a ``CLUSTERDOWN`` while a map
change propagates) did not happen, so they are counted and shown, not failed on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from harness import Cluster, progress
from harness.backends import Node
from harness.checkers import Checker, Result
from harness.checkers.base import check_all
from harness.checkers.windows import WRITE_KINDS
from harness.history import History, Op
from harness.scenario import Outcome
from harness.topology import parse_info
from harness.workload import Workload

#: the redirections the servers count in ``INFO errorstats`` (``errorstat_MOVED``...)
REDIRECTS = ("MOVED", "ASK", "TRYAGAIN")
#: a redirection the client gave up on: the raw reply, or redis-py's exceptions for it
_REDIRECT = re.compile(r"\b(MOVED|ASK|TRYAGAIN)\b|MovedError|AskError|TryAgainError|TTL exhausted")


def _shape(error: str) -> str:
    """An error without its numbers (slots, ports, offsets): equal causes group."""
    return re.sub(r"\d+", "N", error)[:120]


@dataclass(frozen=True)
class Leftovers:
    """Operations that did not end ``ok`` after the client's own redirect handling."""

    total: int
    failed: int  # definite error replies (the op did not happen)
    unknown: int  # timeouts, dropped connections (it may have happened)
    redirects: int  # of the failed: a MOVED/ASK/TRYAGAIN the client did not follow
    by_error: Mapping[str, int]  # error text without its numbers -> count
    examples: tuple[Op, ...]

    def describe(self) -> str:
        if not self.total:
            return "no operation left failed or unknown after the client's redirect handling"
        lines = [
            f"{self.total} operations left after the client's redirect handling "
            f"({self.failed} failed, {self.redirects} of them redirections not followed; "
            f"{self.unknown} unknown)"
        ]
        lines += [f"  {n} x {err}" for err, n in sorted(self.by_error.items(), key=lambda x: -x[1])]
        lines += [
            f"  e.g. op {o.id} {o.kind} {o.key!r} (slot {o.slot}) via {o.node}: {o.outcome} {o.error}"
            for o in self.examples
        ]
        return "\n".join(lines)


def leftovers(history: History, kinds: Iterable[str] = WRITE_KINDS, examples: int = 5) -> Leftovers:
    """Count the operations of ``kinds`` that did not end ``ok``. Pure."""
    wanted = frozenset(kinds)
    left = [o for o in history.ops if o.kind in wanted and o.outcome != "ok"]
    by_error = Counter(_shape(o.error or "(no error text)") for o in left)
    return Leftovers(
        total=len(left),
        failed=sum(1 for o in left if o.outcome == "fail"),
        unknown=sum(1 for o in left if o.outcome == "info"),
        redirects=sum(1 for o in left if o.outcome == "fail" and _REDIRECT.search(o.error or "")),
        by_error=dict(by_error),
        examples=tuple(left[:examples]),
    )


@dataclass(frozen=True)
class LeftoverChecker:
    """Invalid when ``strict`` and an operation was left unknown or on a redirection;
    otherwise (and for other definite errors) a measurement: faults cause left-overs."""

    strict: bool = True
    name: str = "leftovers"

    def check(self, history: History) -> Result:
        r = leftovers(history)
        figures = {
            "left_failed": r.failed,
            "left_unknown": r.unknown,
            "left_redirects": r.redirects,
        }
        bad = self.strict and (r.unknown > 0 or r.redirects > 0)
        return Result(self.name, "invalid" if bad else "valid", figures, r.describe(), r)


# -- redirections the servers sent ---------------------------------------------------------


def redirect_counts(node: Node) -> dict[str, int]:
    """``MOVED``/``ASK``/``TRYAGAIN`` replies ``node`` sent since it started (INFO
    errorstats, Redis 6.2+ and Valkey); empty if it does not answer or count them."""
    try:
        info = parse_info(str(node.call("INFO", "errorstats")))
    except (redis.exceptions.RedisError, OSError):
        return {}
    out = {}
    for code in REDIRECTS:
        raw = info.get(f"errorstat_{code}", "")
        m = re.search(r"count=(\d+)", raw)
        out[code] = int(m.group(1)) if m else 0
    return out


class RedirectTally:
    """Redirections sent by the nodes between :meth:`start` and :meth:`total`, by node
    id (a node seen only later started at zero; a node removed meanwhile is counted up
    to its last :meth:`sample`)."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, int]] = {}
        self.last: dict[str, dict[str, int]] = {}

    def sample(self, nodes: Iterable[Node], *, start: bool = False) -> None:
        for n in nodes:
            counts = redirect_counts(n)
            if not counts or n.node_id is None:
                continue
            if start or n.node_id not in self.last:
                self.first.setdefault(n.node_id, counts if start else dict.fromkeys(counts, 0))
            self.last[n.node_id] = counts

    def total(self) -> dict[str, int]:
        out = dict.fromkeys(REDIRECTS, 0)
        for nid, counts in self.last.items():
            base = self.first.get(nid, {})
            for code in REDIRECTS:
                out[code] += counts.get(code, 0) - base.get(code, 0)
        return out

    def describe(self) -> str:
        t = self.total()
        return "redirections the servers sent: " + ", ".join(f"{c} {t[c]}" for c in REDIRECTS)


# -- one run under load ----------------------------------------------------------------------

#: what happens under the load; sees the workload (its keys) and returns notes for the verdict
Plan = Callable[[Cluster, Workload], Sequence[str]]


def run_under_load(
    cluster: Cluster,
    wl: Workload,
    plan: Plan,
    judges: Sequence[Checker],
    artifacts: Path | None,
    *,
    warmup_ops: int = 500,
    settle_ops: int = 300,
) -> tuple[Outcome, list[str]]:
    """As :class:`harness.scenario.Scenario` does, with a plan that sees the workload:
    warm up, run the plan, settle, read back, judge; the history and the verdict (with
    the plan's notes) go to ``artifacts``."""
    notes: list[str] = []
    with wl.running():
        progress.phase(f"load running: warm-up, {warmup_ops} ops")
        wl.wait_ops(warmup_ops)
        try:
            notes += plan(cluster, wl)
        finally:
            if artifacts is not None and notes:
                (artifacts / "notes.txt").write_text("\n".join(notes) + "\n")
        progress.phase(f"settling, {settle_ops} ops")
        wl.wait_ops(settle_ops)
    history = wl.final_read()
    outcome = Outcome(history, check_all(judges, history))
    if artifacts is not None:
        history.write_jsonl(artifacts / "history.jsonl")
        text = outcome.describe() + "".join(f"\n{n}" for n in notes)
        (artifacts / "verdict.txt").write_text(text + "\n")
    return outcome, notes


def verdict(outcome: Outcome, notes: Sequence[str]) -> str:
    """Every checker's account, then what the plan observed."""
    return outcome.describe() + "".join(f"\n{n}" for n in notes)


def workload_slots(wl: Workload) -> frozenset[int]:
    """The slots the workload's keys are in."""
    from harness.crc16 import key_slot

    return frozenset(key_slot(k) for k in wl.keys)


def first_free_slot(slots: Iterable[int], busy: frozenset[int]) -> int:
    """The first of ``slots`` that holds none of the workload's keys."""
    for s in slots:
        if s not in busy:
            return s
    raise AssertionError("every slot holds a workload key")


def owned_slots(cluster: Cluster, master: Node) -> list[int]:
    me = cluster.view(master, with_shards=False).myself
    assert me is not None, f"{master.addr} does not describe itself"
    return [s for lo, hi in me.slots for s in range(lo, hi + 1)]


def figures(outcome: Outcome, extra: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(outcome.figures)
    out.update(extra)
    return out
