"""harness.matrix and the ``report`` command on made-up report directories: a column per
run, a row per test, chosen metrics per cell, links to each run's own page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli, matrix, metricinfo, pages, summaries
from harness.errors import UsageError
from harness.report import SCHEMA


def summary(impl: str, version: str, *tests: dict[str, Any]) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for t in tests:
        totals[t["outcome"]] = totals.get(t["outcome"], 0) + 1
    return {
        "schema": SCHEMA,
        "implementation": {"name": impl, "version": version, "binary": "/x"},
        "backend": "local",
        "totals": totals,
        "tests": list(tests),
    }


def t(nodeid: str, outcome: str = "passed", **metrics: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": outcome, "duration_s": 1.0, "metrics": metrics}


def column(path: str, s: dict[str, Any] | None, link: str | None = None) -> matrix.Column:
    return matrix.Column(path, summaries.from_summary(path, s) if s else None, link)


REDIS = summary("redis-7.0", "7.0.15", t("a::one", failover_ms=2164.0, bringup_ms=9.0), t("a::two"))
VALKEY = summary("valkey-8.0", "8.0.1", t("a::one", "failed", lost_acked_writes=12), t("a::three"))


def test_columns_rows_and_cells() -> None:
    m = matrix.build([column("r", REDIS), column("v", VALKEY)])
    assert [c.label for c in m.columns] == ["redis-7.0 7.0.15", "valkey-8.0 8.0.1"]
    assert [r.nodeid for r in m.rows] == ["a::one", "a::two", "a::three"]
    one, two, three = m.rows
    assert [c.outcome for c in three.cells] == [None, "passed"]
    assert [c.outcome for c in one.cells] == ["passed", "failed"] and one.differs
    assert one.cells[0].values == (("failover_ms", "2164"),)  # bringup_ms is not chosen
    assert one.cells[1].values == (("lost_acked_writes", "12"),)
    assert [c.outcome for c in two.cells] == ["passed", None] and not two.differs
    assert (
        m.metrics
        == metricinfo.MATRIX_DEFAULT
        == ("failover_ms", "lost_acked_writes", "unknown_writes")
    )


def test_chosen_metrics_and_duplicate_labels() -> None:
    m = matrix.build(
        [column("ci/r1", REDIS), column("ci/r2", REDIS), column("ci/dead", None)], ["bringup_ms"]
    )
    assert [c.label for c in m.columns] == [
        "redis-7.0 7.0.15 (r1)",
        "redis-7.0 7.0.15 (r2)",
        "dead",
    ]
    assert m.rows[0].cells[0].values == (("bringup_ms", "9"),)
    assert m.rows[0].cells[2].outcome is None
    text = matrix.render_text(m)
    assert (
        "  dead: no summary.json  [ci/dead]" in text
        and text[-1] == "2 tests, 0 with outcomes that differ between runs"
    )


def test_no_directories_is_a_mistake() -> None:
    with pytest.raises(UsageError):
        matrix.build([])


def test_page_links_and_is_self_contained() -> None:
    m = matrix.build([column("r", REDIS, "../r/index.html"), column("v", VALKEY, None)])
    html = pages.matrix_page(m)
    assert '<a href="../r/index.html">redis-7.0 7.0.15</a>' in html
    assert "valkey-8.0 8.0.1" in html and "lost_acked_writes 12" in html
    assert "http" not in html and "<script" not in html and "<link" not in html


def write(root: Path, name: str, s: dict[str, Any] | None, index: bool = False) -> str:
    d = root / name
    d.mkdir(parents=True)
    if s is not None:
        (d / "summary.json").write_text(json.dumps(s))
    if index:
        (d / "index.html").write_text("<html></html>")
    return str(d)


def test_links_go_to_the_runs_page_else_its_summary(tmp_path: Path) -> None:
    page_dir = tmp_path / "reports"
    with_page = write(tmp_path, "reports/redis", REDIS, index=True)
    bare = write(tmp_path, "elsewhere/valkey", VALKEY)
    dead = write(tmp_path, "reports/dead", None)
    cols = matrix.load_columns([with_page, bare, dead], page_dir)
    assert [c.link for c in cols] == ["redis/index.html", "../elsewhere/valkey/summary.json", None]
    assert cols[2].run is None
    with pytest.raises(UsageError, match="no-such: no such report directory"):
        matrix.load_columns([str(tmp_path / "no-such")], page_dir)


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = write(tmp_path, "r", REDIS, index=True)
    v = write(tmp_path, "v", VALKEY)
    out = tmp_path / "reports" / "matrix.html"
    assert (
        cli.main(["report", r, v, "--out", str(out), "--metric", "bringup_ms", "--metric", "nope"])
        == 0
    )
    io = capsys.readouterr()
    assert f"page: {out}" in io.out and "no test in these runs has a metric 'nope'" in io.err
    html = out.read_text()
    assert (
        'href="../r/index.html"' in html
        and 'href="../v/summary.json"' in html
        and "bringup_ms 9" in html
    )
    assert cli.main(["report", r, "--metric", "bad name!", "--out", str(out)]) == 2
    assert cli.main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 2 and "--metric 'bad name!'" in err and "no such report directory" in err
    )


def test_regression_scenarios_grid_per_implementation() -> None:
    def reg(rate: str, expect: str, surprise: str = "") -> dict[str, Any]:
        return {
            "scenario": "takeover",
            "bug": {"reference": "valkey-io/valkey#974"},
            "expectation": {"expect": expect},
            "rate": rate,
            "surprise": surprise,
        }

    r = {**REDIS, "regressions": [reg("reproduced 0/5", "not-reproduced")]}
    v = {**VALKEY, "regressions": [reg("reproduced 0/5", "sometimes", "never seen")]}
    m = matrix.build([column("r", r), column("v", v), column("x", REDIS)])
    (row,) = m.scenarios
    assert (row.scenario, row.reference) == ("takeover", "valkey-io/valkey#974")
    assert row.cells == (
        matrix.ScenarioCell("reproduced 0/5", "not-reproduced", ""),
        matrix.ScenarioCell("reproduced 0/5", "sometimes", "never seen"),
        matrix.ScenarioCell(None),
    )
    page = pages.matrix_page(m)
    assert "Regression scenarios &times; implementations" in page
    assert 'class="failed" title="never seen">reproduced 0/5' in page
