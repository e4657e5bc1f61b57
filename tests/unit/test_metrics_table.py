"""The terminal's metrics table (harness.report.metrics_table): per test only the metrics
it has, the ones that matter first, in a 100-column terminal."""

from __future__ import annotations

from typing import Any

from harness import report
from harness.report import fmt_value, metrics_table, short_id

SET_FIGURES = {
    "lost_acked_writes": 0,
    "recovered_unknown": 0,
    "lost_before_faults": 0,
    "lost_in_window": 0,
    "lost_after_heal": 0,
    "failed_present": 0,
    "unknown_writes": 2,
    "unexpected": 0,
}


def result(
    nodeid: str, outcome: str = "passed", duration_s: float = 1.0, **metrics: Any
) -> report.TestResult:
    return report.TestResult(nodeid, outcome, duration_s, metrics)


def test_empty_when_no_metrics() -> None:
    assert metrics_table([]) == []
    assert metrics_table([result("a"), result("b", "failed")]) == []


def test_a_line_per_test_then_its_own_metrics() -> None:
    lines = metrics_table(
        [
            result(
                "suites/chaos/test_c.py::test_kill",
                duration_s=9.44,
                **SET_FIGURES,
                failover_ms=2164.0,
                bringup_ms=2353.065,
            ),
            result("t::no_metrics"),
            result("t::two", "failed", 0.5, label="slow", bringup_ms=7.0),
        ]
    )
    assert [line.rstrip() for line in lines] == [
        "test                               outcome   duration",
        "suites/chaos/test_c.py::test_kill  passed       9.4 s",
        "    failover_ms 2164  lost_acked_writes 0  unknown_writes 2  bringup_ms 2353",
        "t::two                             failed       0.5 s",
        "    bringup_ms 7  label slow",
    ]


def test_zero_counts_are_dropped_unless_they_are_the_news() -> None:
    (_, _, metrics) = metrics_table(
        [result("t::a", **{**SET_FIGURES, "lost_in_window": 3, "unavailable_ms": 0})]
    )
    # lost 0 is what a consistency test says; recovered 0, unexpected 0 say nothing
    assert metrics.split() == [
        "lost_acked_writes",
        "0",
        "unknown_writes",
        "2",
        "unavailable_ms",
        "0",
        "lost_in_window",
        "3",
    ]


def test_fits_100_columns_with_30_metrics_and_long_names() -> None:
    many = {f"m{i:02}_ms": 1000.0 + i for i in range(30)}
    long = (
        "suites/chaos/test_partitions.py::test_isolated_master_is_replaced_and_rejoins_as_replica[partition-"
        + "x" * 60
        + "]"
    )
    lines = metrics_table([result(long, **many), result("s::short", failover_ms=1.0)])
    assert max(len(line) for line in lines) <= 100
    name_line, first, second, *rest = lines[1:]
    assert (
        name_line.startswith("test_isolated_master") and "…" in name_line and "passed" in name_line
    )
    assert first.startswith("    m00_ms 1000  m01_ms 1001")
    assert second.endswith("more in summary.json)") and not rest[0].startswith("    ")
    shown = len(first.split()) // 2 + (len(second.split()) - 4) // 2
    assert second.split()[-4] == f"(+{30 - shown}"


def test_narrower_terminals() -> None:
    lines = metrics_table(
        [result("suites/x/test_y.py::test_z", **{f"n{i}": i for i in range(1, 40)})], width=60
    )
    assert max(len(line) for line in lines) <= 60 and len(lines) == 4


def test_values_and_ids() -> None:
    assert [fmt_value(v) for v in (0.06, 3, 2164.0, 97.21, 1234.5, -1.25, "a b", None)] == [
        "0.1",
        "3",
        "2164",
        "97.2",
        "1234",
        "-1.2",
        "a b",
        "-",
    ]
    nodeid = "suites/chaos/test_c.py::test_name[param]"
    assert short_id(nodeid, 100) == nodeid
    assert short_id(nodeid, 30) == "test_c.py::test_name[param]"
    assert short_id(nodeid, 16) == "test_name[param]"
    assert short_id(nodeid, 10) == "tes…param]" and len(short_id(nodeid, 10)) == 10
