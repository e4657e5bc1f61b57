"""The report page's regression section from summary.json rows: verdict classes, runs
linked to their test's section, and odd data shown as empty rather than a crash."""

from __future__ import annotations

from typing import Any

from harness.htmlreport.regressions import MAX_EVIDENCE, scenario_rows


def row(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "scenario": "s",
        "impl": "valkey-8.0",
        "version": "8.0.1",
        "bug": {"reference": "r#1", "title": "t", "affected": "8.0", "fixed": "8.0.5"},
        "expectation": {"expect": "reproduced", "ref": "r#1"},
        "rate": "reproduced 1/1",
        "surprise": "",
        "runs": [
            {
                "repetition": 1,
                "seed": 7,
                "outcome": "reproduced",
                "test": "suites/regressions/test_s.py::test_s",
                "duration_s": 3.5,
                "evidence": [f"line {i}" for i in range(30)],
                "facts": {"lost": 3},
            }
        ],
    }
    return base | over


def test_rows_runs_and_links() -> None:
    anchor = "t-suites_regressions_test_s.py_test_s"
    (r,) = scenario_rows({"regressions": [row()]}, [anchor])
    assert (r.impl, r.verdict, r.expect, r.fixed) == (
        "valkey-8.0 8.0.1",
        "as-expected",
        "reproduced",
        "8.0.5",
    )
    (run,) = r.runs
    assert (run.seed, run.facts, len(run.evidence)) == ("7", "lost=3", MAX_EVIDENCE)
    assert run.test_anchor == anchor


def test_verdicts_and_odd_data() -> None:
    surprise, plain, odd = scenario_rows(
        {
            "regressions": [
                row(surprise="reproduced in 1 of 1 runs; the profile expects none"),
                row(expectation=None),
                {"scenario": 3, "bug": "x", "runs": [None, {"repetition": "1", "facts": []}]},
                "not a row",
            ]
        }
    )
    assert surprise.verdict == "surprise" and plain.verdict == "no-expectation"
    assert (odd.scenario, odd.reference, odd.rate) == ("3", "", "")
    assert [(x.repetition, x.facts, x.duration_s) for x in odd.runs] == [(0, "", 0.0)]
    assert scenario_rows({}) == [] and scenario_rows({"regressions": "x"}) == []
