"""The page model of the regression scenarios ``summary.json`` keeps (``"regressions"``:
one row per implementation and scenario, :func:`harness.regressions.summary.scenario_table`):
the bug and its reference, the profile's expectation, reproduced k of n, the verdict, and
every run with its seed and evidence.

Pure and forgiving like :mod:`~harness.htmlreport.upgrades`: a missing or odd field shows
as empty, never as a crash of the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.report import safe_name

MAX_EVIDENCE = 12  # lines per run on the page (summary.json keeps 20)


@dataclass(frozen=True)
class RunRow:
    repetition: int
    seed: str
    outcome: str  # reproduced | not-reproduced | inconclusive
    duration_s: float
    evidence: list[str]
    facts: str
    test_anchor: str | None


@dataclass(frozen=True)
class ScenarioRow:
    scenario: str
    reference: str
    title: str
    affected: str
    fixed: str
    observable: str
    impl: str
    expect: str  # "" when the profile has no expectation
    expect_ref: str
    measured: str
    rate: str
    surprise: str
    runs: list[RunRow]

    @property
    def verdict(self) -> str:
        """``surprise`` / ``as-expected`` / ``no-expectation``: the CSS class too."""
        if self.surprise:
            return "surprise"
        return "as-expected" if self.expect else "no-expectation"


def scenario_rows(summary: dict[str, Any], anchors: Iterable[str] = ()) -> list[ScenarioRow]:
    known = set(anchors)
    rows = []
    for data in _list(summary.get("regressions")):
        if not isinstance(data, dict):
            continue
        bug, exp = _dict(data.get("bug")), _dict(data.get("expectation"))
        runs = []
        for r in _list(data.get("runs")):
            if not isinstance(r, dict):
                continue
            anchor = "t-" + safe_name(_str(r.get("test")))
            facts = _dict(r.get("facts"))
            runs.append(
                RunRow(
                    repetition=_int(r.get("repetition")),
                    seed=_str(r.get("seed")),
                    outcome=_str(r.get("outcome")),
                    duration_s=_float(r.get("duration_s")),
                    evidence=[_str(e) for e in _list(r.get("evidence"))][:MAX_EVIDENCE],
                    facts=", ".join(f"{k}={v}" for k, v in facts.items()),
                    test_anchor=anchor if anchor in known else None,
                )
            )
        rows.append(
            ScenarioRow(
                scenario=_str(data.get("scenario")),
                reference=_str(bug.get("reference")),
                title=_str(bug.get("title")),
                affected=_str(bug.get("affected")),
                fixed=_str(bug.get("fixed")),
                observable=_str(bug.get("observable")),
                impl=f"{_str(data.get('impl'))} {_str(data.get('version'))}".strip(),
                expect=_str(exp.get("expect")),
                expect_ref=_str(exp.get("ref")),
                measured=_str(exp.get("measured")),
                rate=_str(data.get("rate")),
                surprise=_str(data.get("surprise")),
                runs=runs,
            )
        )
    return rows


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def _dict(v: object) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _str(v: object) -> str:
    return "" if v is None else str(v)


def _int(v: object) -> int:
    return v if isinstance(v, int) else 0


def _float(v: object) -> float:
    return float(v) if isinstance(v, int | float) else 0.0
