"""Two runs side by side (``python -m harness compare A B``): what changed from A to B,
and whether B is worse, as an exit status CI can gate on.

Pure: two :class:`~harness.summaries.Run` and the thresholds in, a :class:`Comparison`
out; the verdict and the text are functions of it (the page: :mod:`harness.pages`).
B is worse when a test's outcome got worse (:data:`harness.metricinfo.OUTCOME_RANK`; a
test new in B that fails counts) or a metric broke a threshold. A metric moving the wrong
way is shown with its direction (:mod:`harness.metricinfo`) but gates nothing by itself:
timings are noisy, and tests that expect losses (a partitioned master) vary run to run.

Thresholds, each ``METRIC=LIMIT`` (``METRIC`` may be a glob: ``lost_*``):

- ``--max lost_acked_writes=0``: B's value must not exceed the limit;
- ``--max-increase failover_ms=50%`` (relative to A) or ``failover_ms=500`` (absolute):
  B may exceed A by at most this much.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from harness import metricinfo
from harness.errors import UsageError
from harness.metricinfo import Direction
from harness.summaries import Run, Test, Value, fmt, is_number, short_id

Kind = Literal["max", "max-increase"]
Verdict = Literal["worse", "better", "changed", "same"]
_LIMIT = re.compile(r"(?P<name>[A-Za-z_*?\[\]][\w.*?\[\]-]*)=(?P<num>\d+(?:\.\d+)?)(?P<pct>%?)")


@dataclass(frozen=True)
class Threshold:
    kind: Kind
    pattern: str  # a metric name or a glob
    limit: float
    percent: bool = False

    @property
    def text(self) -> str:
        return f"--{self.kind} {self.pattern}={fmt(self.limit)}{'%' if self.percent else ''}"

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.pattern)

    def broken(self, a: Value | None, b: Value | None) -> bool:
        """Whether B's value (``a``: A's, None when A has none) breaks the limit."""
        if not is_number(b):
            return False
        assert isinstance(b, int | float)
        if self.kind == "max":
            return b > self.limit
        if not is_number(a):
            return False
        assert isinstance(a, int | float)
        if not self.percent:
            return b - a > self.limit
        if a == 0:
            return b > 0  # any increase from nothing is an infinite percentage
        return (b - a) / abs(a) * 100 > self.limit


def parse_threshold(kind: Kind, text: str) -> Threshold:
    m = _LIMIT.fullmatch(text.strip())
    if m is None:
        raise UsageError(
            f"--{kind} {text!r}: use METRIC=NUMBER"
            + (" or METRIC=NUMBER% (e.g. failover_ms=50%)" if kind == "max-increase" else "")
        )
    if kind == "max" and m["pct"]:
        raise UsageError(f"--max {text}: --max takes a value; for a percentage use --max-increase")
    return Threshold(kind, m["name"], float(m["num"]), bool(m["pct"]))


@dataclass(frozen=True)
class OutcomeChange:
    nodeid: str
    a: str | None  # None: the test is new in B
    b: str
    verdict: Verdict
    message: str = ""  # B's reason, when it has one


@dataclass(frozen=True)
class MetricChange:
    nodeid: str
    name: str
    a: Value | None  # None: only B has it (shown when B breaks a --max)
    b: Value
    verdict: Verdict
    broken: tuple[str, ...] = ()  # the thresholds B's value breaks

    @property
    def change(self) -> str:
        """``+12``, ``+826 (+38 %)``, or ``-`` when one side has no number."""
        a, b = self.a, self.b
        if not (is_number(a) and is_number(b)):
            return "-" if a != b else ""
        assert isinstance(a, int | float) and isinstance(b, int | float)
        d = b - a
        text = ("+" if d > 0 else "") + fmt(d)
        if a != 0 and d != 0:
            pct = d / abs(a) * 100
            text += f" ({'+' if pct > 0 else ''}{pct:.0f} %)"
        return text


@dataclass(frozen=True)
class Comparison:
    a: Run
    b: Run
    outcomes: tuple[OutcomeChange, ...]  # tests in both whose outcome differs; new failing
    metrics: tuple[MetricChange, ...]  # every metric both runs have, and B's broken limits
    only_a: tuple[Test, ...]
    only_b: tuple[Test, ...]
    thresholds: tuple[Threshold, ...] = ()

    @property
    def worse_outcomes(self) -> list[OutcomeChange]:
        return [o for o in self.outcomes if o.verdict == "worse"]

    @property
    def broken(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.broken]

    @property
    def changed_metrics(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.verdict != "same" or m.broken]

    @property
    def b_is_worse(self) -> bool:
        return bool(self.worse_outcomes or self.broken)

    def verdict_line(self) -> str:
        if not self.b_is_worse:
            return "verdict: B is not worse than A"
        why = []
        if self.worse_outcomes:
            why.append(f"{len(self.worse_outcomes)} outcome(s) worse")
        if self.broken:
            why.append(f"{len(self.broken)} metric(s) over a threshold")
        return f"verdict: B is worse: {', '.join(why)}"


def exit_status(cmp: Comparison) -> int:
    """1 when B is worse, else 0 (2, bad input, is the command line's)."""
    return 1 if cmp.b_is_worse else 0


def _outcome_verdict(a: str, b: str) -> Verdict:
    ra, rb = metricinfo.outcome_rank(a), metricinfo.outcome_rank(b)
    return "worse" if rb > ra else "better" if rb < ra else "changed" if a != b else "same"


def _metric_verdict(name: str, a: Value | None, b: Value | None) -> Verdict:
    if a == b:
        return "same"
    if metricinfo.direction(name) is Direction.NEUTRAL or not (is_number(a) and is_number(b)):
        return "changed"
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return "worse" if b > a else "better"


def compare(a: Run, b: Run, thresholds: Sequence[Threshold] = ()) -> Comparison:
    """What changed from ``a`` to ``b``. A threshold that names no metric of either run is
    a mistake (a typo would pass every gate): :class:`UsageError`."""
    names = {n for run in (a, b) for t in run.tests.values() for n in t.metrics}
    for th in thresholds:
        if not any(th.matches(n) for n in names):
            raise UsageError(f"{th.text}: no test in either run has a metric {th.pattern!r}")
    outcomes: list[OutcomeChange] = []
    metrics: list[MetricChange] = []
    for nodeid, tb in b.tests.items():
        ta = a.tests.get(nodeid)
        if ta is None:
            if metricinfo.outcome_rank(tb.outcome) > 0:
                outcomes.append(OutcomeChange(nodeid, None, tb.outcome, "worse", tb.message))
        elif ta.outcome != tb.outcome:
            verdict = _outcome_verdict(ta.outcome, tb.outcome)
            outcomes.append(OutcomeChange(nodeid, ta.outcome, tb.outcome, verdict, tb.message))
        am = dict(ta.metrics) if ta else {}
        for name in sorted(tb.metrics, key=metricinfo.priority):
            va, vb = am.get(name), tb.metrics[name]
            broken = tuple(th.text for th in thresholds if th.matches(name) and th.broken(va, vb))
            # a figure only one run has (its test skipped, a new metric) is no change
            if name in am or broken:
                metrics.append(
                    MetricChange(nodeid, name, va, vb, _metric_verdict(name, va, vb), broken)
                )
    return Comparison(
        a=a,
        b=b,
        outcomes=tuple(outcomes),
        metrics=tuple(metrics),
        only_a=tuple(t for n, t in a.tests.items() if n not in b.tests),
        only_b=tuple(t for n, t in b.tests.items() if n not in a.tests),
        thresholds=tuple(thresholds),
    )


def _shown_in_text(m: MetricChange) -> bool:
    """The terminal gets the changes a person acts on; the page has every one."""
    if m.broken:
        return True
    if m.verdict == "same":
        return False
    if m.name in metricinfo.ANOMALY_COUNTS:
        return True
    return m.name in metricinfo.KEY_METRICS and _pct(m.a, m.b) >= TEXT_TIMING_PCT


#: a key timing's change the terminal shows (the page shows all): smaller is noise
TEXT_TIMING_PCT = 10.0


def _pct(a: Value | None, b: Value | None) -> float:
    if not (is_number(a) and is_number(b)):
        return 0.0
    assert isinstance(a, int | float) and isinstance(b, int | float)
    return abs(b - a) / abs(a) * 100 if a else float("inf")


def render_text(cmp: Comparison, width: int = 100) -> list[str]:
    """The comparison for a terminal, at most ``width`` columns wide (test ids shortened)."""
    out = [f"A  {cmp.a.path}: {cmp.a.describe()}", f"B  {cmp.b.path}: {cmp.b.describe()}"]
    counts = {v: sum(o.verdict == v for o in cmp.outcomes) for v in ("worse", "better", "changed")}
    out.append("outcomes: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    order = {"worse": 0, "better": 1, "changed": 2, "same": 3}
    for o in sorted(cmp.outcomes, key=lambda o: order[o.verdict]):
        move = f"{o.a or 'not in A'} -> {o.b}"
        out.append(f"  {o.verdict:7} {short_id(o.nodeid, width - 12 - len(move))}  {move}")
        if o.message and o.verdict == "worse":
            out.append(f"          {o.message[: width - 10]}")
    changed = cmp.changed_metrics
    shown = [m for m in changed if _shown_in_text(m)]
    shown.sort(
        key=lambda m: (not m.broken, order[m.verdict], m.name not in metricinfo.ANOMALY_COUNTS)
    )
    out.append(
        f"metrics: {sum(m.verdict == 'worse' for m in changed)} worse, "
        f"{sum(m.verdict == 'better' for m in changed)} better, "
        f"{sum(m.verdict == 'changed' for m in changed)} changed"
        + (f" ({len(changed) - len(shown)} more on the page)" if len(changed) > len(shown) else "")
    )
    if shown:
        out += _table(shown, width)
    for label, tests in (("only in A", cmp.only_a), ("only in B", cmp.only_b)):
        if tests:
            out.append(f"{label} ({len(tests)}):")
            out += [f"  {short_id(t.nodeid, width - 12)}  {t.outcome}" for t in tests]
    if cmp.thresholds:
        out.append("thresholds: " + " ".join(th.text for th in cmp.thresholds))
    for m in cmp.broken:
        was = "" if m.a is None else f" (A: {fmt(m.a)})"
        lead = f"  over {', '.join(m.broken)}: {m.name} {fmt(m.b)}{was} in "
        out.append(lead + short_id(m.nodeid, max(20, width - len(lead))))
    out.append(cmp.verdict_line())
    return out


def _table(rows: Iterable[MetricChange], width: int) -> list[str]:
    body = [
        [
            m.nodeid,
            m.name,
            fmt(m.a),
            fmt(m.b),
            m.change,
            "OVER LIMIT" if m.broken else m.verdict,
        ]
        for m in rows
    ]
    head = ["test", "metric", "A", "B", "change", ""]
    fixed = [max(len(r[i]) for r in [head, *body]) for i in range(1, 5)]
    room = max(20, width - 2 - sum(fixed) - 2 * 5 - max(len(r[5]) for r in body))
    for r in body:
        r[0] = short_id(r[0], room)
    widths = [max(len(r[0]) for r in [head, *body]), *fixed]
    fmt_row = "  " + "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    return [fmt_row.format(*r).rstrip() for r in [head, *body]]
