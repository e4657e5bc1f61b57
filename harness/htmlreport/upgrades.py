"""The page model of the upgrade rehearsals ``summary.json`` keeps (``"upgrades"``: one
``Rehearsal.to_json`` per rehearsal, with its test's node id; a rollback nested in its
upgrade): a timeline of steps with the checks after each, the risks, the writes.

Pure and forgiving: a field missing or of another type (an older or newer harness wrote
the file) shows as empty, never as a crash of the page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.report import safe_name
from harness.upgrade.plan import PLANS

#: the checks made after every step (harness.upgrade.checks), in the order they run:
#: one column each, always, so a check that was not run shows as such
CHECK_NAMES = (
    "coverage-and-agreement",
    "one-primary-per-shard",
    "replicas-synced",
    "versions",
    "cluster-check",
    "restart",
)
#: client errors listed per step (the rest counted), write examples, rollback depth
TOP_ERRORS = 3
MAX_EXAMPLES = 10
MAX_DEPTH = 3


@dataclass(frozen=True)
class CheckCell:
    name: str
    status: str  # ok | fail | unknown (anything else shown as it is)
    detail: str
    ms: float


@dataclass(frozen=True)
class StepRow:
    """One step as it ran: its span in s since the rehearsal began, its outcome, what
    clients saw (unavailable ms per shard, error counts) and its checks by name."""

    index: int
    shard: int | None
    action: str
    node: str
    detail: str
    status: str  # ok | failed | skipped
    start_s: float
    duration_ms: float
    result: str
    error: str
    checks: dict[str, CheckCell]
    unavailable_ms: dict[str, float]
    client_errors: list[tuple[str, int]]
    versions: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.index}. {self.action} {self.node}"

    @property
    def max_unavailable_ms(self) -> float:
        return max(self.unavailable_ms.values(), default=0.0)

    @property
    def unavailable_title(self) -> str:
        return "; ".join(f"{k}: {v:.0f} ms" for k, v in self.unavailable_ms.items())

    @property
    def top_errors(self) -> list[tuple[str, int]]:
        return self.client_errors[:TOP_ERRORS]

    @property
    def other_errors(self) -> int:
        """Client errors beyond the top ones (their count, summed)."""
        return sum(n for _, n in self.client_errors[TOP_ERRORS:])

    @property
    def outcome(self) -> str:
        """The error of a failed step, else what the step reported."""
        return self.error or self.result

    def failed_checks(self) -> list[CheckCell]:
        return [c for c in self.checks.values() if c.status == "fail"]


@dataclass(frozen=True)
class RiskRow:
    severity: str
    name: str
    node: str
    step: int | None
    evidence: str
    advice: str


@dataclass(frozen=True)
class WritesView:
    acknowledged: int
    unknown: int
    failed: int
    lost: list[tuple[str, int]]  # by window class
    lost_outside_windows: int
    examples: list[str]

    @property
    def lost_total(self) -> int:
        return sum(n for _, n in self.lost)


@dataclass
class RehearsalView:
    anchor: str  # the section's id, and its figure's
    test: str
    test_anchor: str | None  # the test's section, when the page has one
    kind: str
    about: str  # what the plan does, in a line
    source: str
    target: str
    backend: str
    verdict: str  # safe | unsafe | "" (not said)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[StepRow] = field(default_factory=list)
    check_names: list[str] = field(default_factory=list)
    risks: list[RiskRow] = field(default_factory=list)
    writes: WritesView | None = None
    rollback: RehearsalView | None = None
    files: list[tuple[str, str]] = field(default_factory=list)  # (name, href)

    @property
    def headline(self) -> str:
        return f"{self.kind} {self.source} -> {self.target} ({self.backend})"

    @property
    def span_s(self) -> float:
        return max((s.start_s + s.duration_ms / 1000 for s in self.steps), default=0.0)

    def counts(self) -> dict[str, int]:
        """Steps by status, for the headline."""
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.status] = out.get(s.status, 0) + 1
        return out


def upgrade_views(
    summary: dict[str, Any], anchors: Iterable[str] = (), files: dict[str, list[str]] | None = None
) -> list[RehearsalView]:
    """Every rehearsal of ``summary`` (none: an older summary, or no upgrade suite ran).
    ``anchors``: the test sections on the page; ``files``: per test folder, the names of
    the upgrade files it holds (``upgrade-<plan>.json`` and ``.txt``) to link."""
    known = set(anchors)
    out = []
    for i, data in enumerate(_list(summary.get("upgrades"))):
        if not isinstance(data, dict):
            continue
        test = _str(data.get("test"))
        folder = safe_name(test) if test else ""
        view = rehearsal_view(data, f"u-{i}")
        view.test_anchor = f"t-{folder}" if f"t-{folder}" in known else None
        names = (files or {}).get(folder, [])
        view.files = [
            (n, f"artifacts/{folder}/{n}")
            for n in names
            if n in (f"upgrade-{view.kind}.json", f"upgrade-{view.kind}.txt")
        ]
        out.append(view)
    return out


def rehearsal_view(data: dict[str, Any], anchor: str, depth: int = 0) -> RehearsalView:
    plan = _dict(data.get("plan"))
    kind = _str(plan.get("kind"), "?")
    verdict = _str(data.get("verdict")).lower()
    view = RehearsalView(
        anchor=anchor,
        test=_str(data.get("test")),
        test_anchor=None,
        kind=kind,
        about=PLANS.get(kind, ""),
        source=_str(plan.get("source"), "?"),
        target=_str(plan.get("target"), "?"),
        backend=_str(data.get("backend"), "?"),
        verdict=verdict,
        reasons=[_str(r) for r in _list(data.get("reasons"))],
        notes=[_str(n) for n in _list(plan.get("notes"))],
        steps=[step_row(s) for s in _list(data.get("steps")) if isinstance(s, dict)],
        risks=[risk_row(r) for r in _list(data.get("risks")) if isinstance(r, dict)],
        writes=writes_view(data.get("writes")),
    )
    seen = {name for s in view.steps for name in s.checks}
    view.check_names = [*CHECK_NAMES, *sorted(seen - set(CHECK_NAMES))]
    back = data.get("rollback")
    if isinstance(back, dict) and depth < MAX_DEPTH:
        view.rollback = rehearsal_view(back, f"{anchor}-rollback", depth + 1)
        view.rollback.test = view.test
    return view


def step_row(s: dict[str, Any]) -> StepRow:
    checks: dict[str, CheckCell] = {}
    for c in _list(s.get("checks")):
        if isinstance(c, dict):
            name = _str(c.get("name"), "?")
            checks[name] = CheckCell(
                name, _str(c.get("status"), "unknown"), _str(c.get("detail")), _num(c.get("ms"))
            )
    errors = sorted(
        ((_str(k), int(_num(v))) for k, v in _dict(s.get("client_errors")).items()),
        key=lambda kv: -kv[1],
    )
    shard = s.get("shard")
    return StepRow(
        index=int(_num(s.get("index"))),
        shard=shard if isinstance(shard, int) else None,
        action=_str(s.get("action"), "?"),
        node=_str(s.get("node")),
        detail=_str(s.get("detail")),
        status=_str(s.get("status"), "?"),
        start_s=round(_num(s.get("start_ms")) / 1000, 4),
        duration_ms=_num(s.get("duration_ms")),
        result=_str(s.get("result")),
        error=_str(s.get("error")),
        checks=checks,
        unavailable_ms={_str(k): _num(v) for k, v in _dict(s.get("unavailable_ms")).items()},
        client_errors=errors,
        versions={_str(k): _str(v) for k, v in _dict(s.get("versions")).items()},
    )


def risk_row(r: dict[str, Any]) -> RiskRow:
    step = r.get("step")
    return RiskRow(
        severity=_str(r.get("severity"), "?"),
        name=_str(r.get("name"), "?"),
        node=_str(r.get("node")),
        step=step if isinstance(step, int) else None,
        evidence=_str(r.get("evidence")),
        advice=_str(r.get("advice")),
    )


def writes_view(w: object) -> WritesView | None:
    if not isinstance(w, dict):
        return None
    lost = [(_str(k), int(_num(v))) for k, v in _dict(w.get("lost")).items()]
    return WritesView(
        acknowledged=int(_num(w.get("acknowledged"))),
        unknown=int(_num(w.get("unknown"))),
        failed=int(_num(w.get("failed"))),
        lost=lost,
        lost_outside_windows=int(_num(w.get("lost_outside_windows"))),
        examples=[_str(e) for e in _list(w.get("examples"))][:MAX_EXAMPLES],
    )


def all_views(views: Iterable[RehearsalView]) -> list[RehearsalView]:
    """The rehearsals and their rollbacks, each with its own figure."""
    out = []
    for v in views:
        r: RehearsalView | None = v
        while r is not None:
            out.append(r)
            r = r.rollback
    return out


def _str(v: object, default: str = "") -> str:
    return default if v is None else str(v)


def _num(v: object) -> float:
    try:
        x = float(v) if isinstance(v, int | float) else float(str(v))
    except ValueError:
        return 0.0
    return x if math.isfinite(x) else 0.0


def _dict(v: object) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []
