"""harness.report: metrics from user_properties and summary.json (the terminal table:
test_metrics_table.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# The module, not the class: pytest would try to collect a top-level name ``TestResult``.
from harness import report
from harness.report import (
    METRIC_PREFIX,
    SCHEMA,
    build_summary,
    metrics_from_properties,
    now_iso,
    write_summary,
)


def result(nodeid: str, outcome: str = "passed", **kwargs: Any) -> report.TestResult:
    return report.TestResult(nodeid, outcome, **kwargs)


# -- TestResult -----------------------------------------------------------------------


def test_result_as_dict() -> None:
    r = result("t.py::a", "failed", duration_s=1.23456, metrics={"x": 1}, message="boom")
    assert r.as_dict() == {
        "nodeid": "t.py::a",
        "outcome": "failed",
        "duration_s": 1.235,
        "metrics": {"x": 1},
        "message": "boom",
    }
    assert "message" not in result("t.py::b").as_dict()
    assert result("t.py::b").as_dict()["duration_s"] == 0.0


def test_result_defaults_are_not_shared() -> None:
    a, b = result("a"), result("b")
    a.metrics["m"] = 1
    assert b.metrics == {}


# -- metrics_from_properties ----------------------------------------------------------


def test_metrics_from_properties_filters_on_prefix() -> None:
    props = [
        ("metric:failover_ms", 1234),
        ("other", "ignored"),
        ("metric:bringup_ms", 55.5),
        ("metrics:almost", 1),  # different prefix
        ("Metric:case", 2),  # prefix is case-sensitive
        ("xmetric:inside", 3),
        ("metric:label", "fast"),
        ("metric:", 0),  # empty name kept as ""
    ]
    assert metrics_from_properties(props) == {
        "failover_ms": 1234,
        "bringup_ms": 55.5,
        "label": "fast",
        "": 0,
    }
    assert METRIC_PREFIX == "metric:"


def test_metrics_from_properties_last_value_wins_and_empty() -> None:
    assert metrics_from_properties([("metric:a", 1), ("metric:a", 2)]) == {"a": 2}
    assert metrics_from_properties([]) == {}
    assert metrics_from_properties(iter([("metric:g", 1)])) == {"g": 1}


# -- build_summary --------------------------------------------------------------------


def test_build_summary_totals_and_order() -> None:
    results = [
        result("a", "passed"),
        result("b", "failed", message="assert 1 == 2"),
        result("c", "passed"),
        result("d", "skipped"),
        result("e", "error"),
        result("f", "xfailed"),
        result("g", "passed"),
        result("h", "xpassed"),
    ]
    meta = {"backend": "local", "seed": 42, "implementation": None}
    summary = build_summary(meta, results)
    assert summary["schema"] == SCHEMA == "redis-cluster-harness/summary/v1"
    assert summary["backend"] == "local"
    assert summary["seed"] == 42
    assert summary["implementation"] is None
    assert summary["totals"] == {
        "passed": 3,
        "failed": 1,
        "skipped": 1,
        "error": 1,
        "xfailed": 1,
        "xpassed": 1,
    }
    assert sum(summary["totals"].values()) == len(results)
    assert [t["nodeid"] for t in summary["tests"]] == list("abcdefgh")
    assert summary["tests"][1]["message"] == "assert 1 == 2"
    assert list(summary)[:1] == ["schema"]


def test_build_summary_empty() -> None:
    summary = build_summary({}, [])
    assert summary == {"schema": SCHEMA, "totals": {}, "tests": []}


def test_build_summary_accepts_a_generator() -> None:
    summary = build_summary({}, (result(n) for n in "xy"))
    assert summary["totals"] == {"passed": 2}


# -- write_summary --------------------------------------------------------------------


def test_write_summary_creates_dirs_and_writes_json(tmp_path: Path) -> None:
    summary = build_summary({"seed": 1}, [result("a", metrics={"ms": 1.5})])
    target = tmp_path / "nested" / "reports"
    path = write_summary(target, summary)
    assert path == target / "summary.json"
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == summary
    assert text.startswith('{\n  "schema": ')  # indented, schema first
    assert sorted(p.name for p in target.iterdir()) == ["summary.json"]  # no temp file left


def test_write_summary_replaces_existing_file(tmp_path: Path) -> None:
    write_summary(tmp_path, {"run": 1})
    path = write_summary(tmp_path, {"run": 2})
    assert json.loads(path.read_text()) == {"run": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_write_summary_goes_through_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_summary(tmp_path, {"run": "old"})
    seen: list[tuple[str, str]] = []
    real_replace = Path.replace

    def spy(self: Path, target: Path) -> Path:
        # at the moment of the rename the old file is still whole and the new one complete
        seen.append((self.name, Path(target).name))
        assert json.loads(Path(target).read_text()) == {"run": "old"}
        assert json.loads(self.read_text()) == {"run": "new"}
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", spy)
    write_summary(tmp_path, {"run": "new"})
    assert seen == [(f"summary.{os.getpid()}.tmp", "summary.json")]
    assert json.loads((tmp_path / "summary.json").read_text()) == {"run": "new"}


def test_write_summary_failure_keeps_old_file(tmp_path: Path) -> None:
    write_summary(tmp_path, {"run": "old"})
    with pytest.raises(TypeError):
        write_summary(tmp_path, {"bad": object()})  # not JSON-serialisable
    assert json.loads((tmp_path / "summary.json").read_text()) == {"run": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_now_iso_shape() -> None:
    stamp = now_iso()
    assert len(stamp) >= len("2024-01-01T00:00:00")
    assert stamp[4] == "-" and stamp[10] == "T" and stamp[13] == ":"
