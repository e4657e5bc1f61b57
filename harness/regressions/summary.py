"""Regression runs as ``summary.json`` keeps them and people read them: the runs that
reached the reporter (user properties), tallied per implementation and scenario into
*reproduced k of n* with the verdict against the profile (:func:`tally`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from harness.regressions.model import Expectation, RunRecord, scenarios_of, tally

#: the pytest ``user_properties`` key of one run (its JSON): the channel metrics use,
#: so runs reach ``summary.json`` through pytest-xdist too
PROPERTY = "regression"


def runs_from(props: Iterable[tuple[str, object]]) -> list[dict[str, Any]]:
    return [json.loads(str(v)) for k, v in props if k == PROPERTY]


def scenario_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (implementation, scenario): the bug, the expectation, k of n, the
    seeds and the verdict (``surprise`` empty when the runs are what the profile says)."""
    rows = []
    for impl in dict.fromkeys(r["impl"] for r in runs):
        mine = [r for r in runs if r["impl"] == impl]
        records = [RunRecord.from_dict(r) for r in mine]
        for name in scenarios_of(records):
            of = [r for r in mine if r["scenario"] == name]
            given = of[0].get("expectation")
            expectation = Expectation(**given) if given else None
            t = tally(name, records, expectation)
            rows.append(
                {
                    "scenario": name,
                    "impl": impl,
                    "version": of[0].get("version", ""),
                    "bug": of[0]["bug"],
                    "expectation": given,
                    "reproduced": t.reproduced,
                    "not_reproduced": t.not_reproduced,
                    "inconclusive": t.inconclusive,
                    "rate": t.rate(),
                    "surprise": t.surprise,
                    "runs": [
                        {k: r[k] for k in ("repetition", "seed", "outcome", "test", "duration_s")}
                        | {"evidence": r["evidence"][:20], "facts": r["facts"]}
                        for r in of
                    ],
                }
            )
    return rows


def scenario_lines(row: dict[str, Any]) -> list[str]:
    """A row in the terminal: the rate, the verdict, and the first evidence of the last
    reproduction (or of the last run)."""
    expect = (row["expectation"] or {}).get("expect", "")
    verdict = (
        f"SURPRISE: {row['surprise']}"
        if row["surprise"]
        else (f"as expected ({expect})" if expect else "no expectation in the profile")
    )
    head = (
        f"{row['scenario']} [{row['bug']['reference']}] on {row['impl']} {row['version']}: "
        f"{row['rate']}; {verdict}"
    )
    shown = [r for r in row["runs"] if r["outcome"] == "reproduced"] or row["runs"]
    last = shown[-1]
    first = last["evidence"][0] if last["evidence"] else ""
    seeds = ", ".join(str(r["seed"]) for r in row["runs"])
    return [
        head,
        f"  {last['outcome']} (run {last['repetition']}): {first[:240]}",
        f"  seeds: {seeds}",
    ]
