"""harness.compare on made-up summaries: deltas and their direction, thresholds, tests in
one run only, outcomes worse and better, the exit status; the command line's bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli, compare, summaries
from harness.compare import Threshold, parse_threshold
from harness.errors import UsageError
from harness.report import SCHEMA

SET = "suites/chaos/test_consistency.py::test_fault_free_run_loses_nothing[set]"
KILL = "suites/chaos/test_consistency.py::test_kill_master_under_load"


def summary(*tests: dict[str, Any], impl: str = "redis-7.0") -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "implementation": {"name": impl, "flavor": "redis", "version": "7.0.15", "binary": "/x"},
        "backend": "local",
        "seed": 1,
        "totals": {},
        "tests": list(tests),
    }


def t(nodeid: str, outcome: str = "passed", message: str = "", **metrics: Any) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "outcome": outcome,
        "duration_s": 1.0,
        "metrics": metrics,
        "message": message,
    }


def run(path: str, *tests: dict[str, Any]) -> summaries.Run:
    return summaries.from_summary(path, summary(*tests))


SOUND = (
    t(SET, lost_acked_writes=0, unknown_writes=0),
    t(KILL, failover_ms=2000.0, lost_acked_writes=0),
)
LOSSY = (
    t(SET, "failed", "verdict invalid: LOST 12", lost_acked_writes=12, unknown_writes=0),
    t(KILL, failover_ms=2760.0, lost_acked_writes=0),
)


def test_a_lossy_b_is_worse_and_names_the_lost_writes() -> None:
    cmp = compare.compare(run("sound", *SOUND), run("lossy", *LOSSY))
    assert [(o.nodeid, o.a, o.b, o.verdict) for o in cmp.outcomes] == [
        (SET, "passed", "failed", "worse")
    ]
    lost = next(m for m in cmp.metrics if m.nodeid == SET and m.name == "lost_acked_writes")
    assert (lost.a, lost.b, lost.verdict, lost.change) == (0, 12, "worse", "+12")
    fo = next(m for m in cmp.metrics if m.name == "failover_ms")
    assert (fo.verdict, fo.change) == ("worse", "+760 (+38 %)")
    assert compare.exit_status(cmp) == 1
    text = "\n".join(compare.render_text(cmp))
    assert "passed -> failed" in text and "lost_acked_writes" in text and "LOST 12" in text
    assert text.splitlines()[-1].startswith("verdict: B is worse: 1 outcome(s) worse")


def test_b_better_than_a_exits_0() -> None:
    cmp = compare.compare(run("lossy", *LOSSY), run("sound", *SOUND))
    assert [o.verdict for o in cmp.outcomes] == ["better"]
    assert {m.name: m.verdict for m in cmp.metrics if m.nodeid == SET}[
        "lost_acked_writes"
    ] == "better"
    assert compare.exit_status(cmp) == 0
    assert compare.render_text(cmp)[-1] == "verdict: B is not worse than A"


def test_the_same_run_twice_changes_nothing() -> None:
    cmp = compare.compare(run("a", *SOUND), run("b", *SOUND))
    assert cmp.outcomes == () and cmp.changed_metrics == [] and compare.exit_status(cmp) == 0
    assert cmp.only_a == () and cmp.only_b == ()


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ("passed", "failed", "worse"),
        ("passed", "error", "worse"),
        ("passed", "xfailed", "worse"),  # a known server bug appeared
        ("xfailed", "failed", "worse"),
        ("failed", "passed", "better"),
        ("xfailed", "passed", "better"),
        ("passed", "skipped", "changed"),  # not run: no verdict either way
        ("failed", "error", "changed"),
    ],
)
def test_outcome_directions(a: str, b: str, verdict: str) -> None:
    cmp = compare.compare(run("a", t(SET, a)), run("b", t(SET, b)))
    assert [o.verdict for o in cmp.outcomes] == [verdict]
    assert compare.exit_status(cmp) == (1 if verdict == "worse" else 0)


def test_tests_in_one_run_only() -> None:
    cmp = compare.compare(
        run("a", t(SET), t("x::gone")), run("b", t(SET), t("x::new_ok"), t("x::new_bad", "failed"))
    )
    assert [x.nodeid for x in cmp.only_a] == ["x::gone"]
    assert [x.nodeid for x in cmp.only_b] == ["x::new_ok", "x::new_bad"]
    # a test new in B that fails makes B worse; one that is gone does not
    assert [(o.nodeid, o.a, o.verdict) for o in cmp.outcomes] == [("x::new_bad", None, "worse")]
    text = "\n".join(compare.render_text(cmp))
    assert "only in A (1):" in text and "only in B (2):" in text and "not in A -> failed" in text


def test_directions_are_declared_not_guessed() -> None:
    a = run(
        "a",
        t(
            SET,
            failover_bound_ms=6000,
            kills=3,
            recovered_unknown=1,
            partition="isolate n0",
            bringup_ms=2000,
        ),
    )
    b = run(
        "b",
        t(
            SET,
            failover_bound_ms=9000,
            kills=5,
            recovered_unknown=4,
            partition="split",
            bringup_ms=1000,
        ),
    )
    got = {m.name: m.verdict for m in compare.compare(a, b).metrics}
    assert got == {
        "failover_bound_ms": "changed",  # a setting
        "kills": "changed",
        "recovered_unknown": "changed",
        "partition": "changed",
        "bringup_ms": "better",  # a timing: lower is better
    }


def test_a_metric_only_one_run_has_is_no_change() -> None:
    cmp = compare.compare(run("a", t(SET, failover_ms=1)), run("b", t(SET, converge_ms=1)))
    assert cmp.metrics == ()


@pytest.mark.parametrize(
    ("text", "a", "b", "broken"),
    [
        ("max:lost_acked_writes=0", 0, 0, False),
        ("max:lost_acked_writes=0", 0, 1, True),
        ("max:lost_acked_writes=0", None, 1, True),  # a --max needs no A
        ("max:failover_ms=3000", 9000, 2999.5, False),
        ("max-increase:failover_ms=50%", 2000, 3000, False),
        ("max-increase:failover_ms=50%", 2000, 3001, True),
        ("max-increase:failover_ms=50%", 0, 1, True),  # from nothing: infinitely more
        ("max-increase:failover_ms=50%", 0, 0, False),
        ("max-increase:failover_ms=50%", None, 10**6, False),  # nothing to compare with
        ("max-increase:unknown_writes=5", 10, 15, False),
        ("max-increase:unknown_writes=5", 10, 16, True),
        ("max:lost_*=0", 0, "many", False),  # not a number
    ],
)
def test_threshold_limits(text: str, a: Any, b: Any, broken: bool) -> None:
    kind, spec = text.split(":")
    assert parse_threshold(kind, spec).broken(a, b) is broken  # type: ignore[arg-type]


def test_threshold_syntax() -> None:
    assert parse_threshold("max-increase", "failover_ms=50%") == Threshold(
        "max-increase", "failover_ms", 50.0, True
    )
    assert parse_threshold("max", "lost_*=0").text == "--max lost_*=0"
    assert parse_threshold("max-increase", "x=2.5").text == "--max-increase x=2.5"
    for kind, bad in [
        ("max", "lost_acked_writes"),
        ("max", "=3"),
        ("max", "x=-1"),
        ("max", "x=5%"),
        ("max-increase", "x=abc"),
        ("max-increase", "x=5%%"),
    ]:
        with pytest.raises(UsageError) as e:
            parse_threshold(kind, bad)  # type: ignore[arg-type]
        assert "\n" not in str(e.value)


def test_thresholds_gate_and_are_named() -> None:
    ths = [parse_threshold("max", "lost_*=0"), parse_threshold("max-increase", "failover_ms=50%")]
    cmp = compare.compare(
        run("a", *SOUND),
        run("b", *SOUND[:1], t(KILL, failover_ms=3100.0, lost_acked_writes=0)),
        ths,
    )
    assert [(m.name, m.broken) for m in cmp.broken] == [
        ("failover_ms", ("--max-increase failover_ms=50%",))
    ]
    assert compare.exit_status(cmp) == 1
    text = compare.render_text(cmp)
    over = "  over --max-increase failover_ms=50%: failover_ms 3100 (A: 2000) in "
    assert any(x.startswith(over) and x.endswith("test_kill_master_under_load") for x in text)
    assert text[-1] == "verdict: B is worse: 1 metric(s) over a threshold"
    # a test new in B is held to --max too
    cmp = compare.compare(run("a", *SOUND), run("b", *SOUND, t("x::new", lost_in_window=3)), ths)
    assert [(m.nodeid, m.a, m.b) for m in cmp.broken] == [("x::new", None, 3)]


def test_a_threshold_naming_no_metric_is_a_mistake() -> None:
    with pytest.raises(UsageError, match="no test in either run has a metric 'failover_mss'"):
        compare.compare(
            run("a", *SOUND), run("b", *SOUND), [parse_threshold("max", "failover_mss=1")]
        )


def test_text_fits_100_columns_and_drops_timing_noise() -> None:
    long = "suites/chaos/test_partitions.py::test_isolated_master_is_replaced_and_rejoins_as_replica[partition-with-a-long-name]"
    a = run(
        "a",
        t(long, failover_ms=4000.0, lost_acked_writes=400),
        t(KILL, failover_ms=2000.0, bringup_ms=10.0),
    )
    b = run(
        "b",
        t(long, "failed", "x" * 300, failover_ms=4100.0, lost_acked_writes=500),
        t(KILL, failover_ms=2100.0, bringup_ms=20.0),
    )
    cmp = compare.compare(a, b)
    lines = compare.render_text(cmp)
    assert all(len(line) <= 100 for line in lines[2:]), max(lines[2:], key=len)
    table = [line for line in lines if "failover_ms " in line or "bringup_ms" in line]
    assert table == []  # +2.5 % and +5 %: on the page only
    assert "(3 more on the page)" in "\n".join(lines)
    assert any("lost_acked_writes" in line and "+100 (+25 %)" in line for line in lines)


def write(tmp: Path, name: str, *tests: dict[str, Any]) -> str:
    d = tmp / name
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(summary(*tests)))
    return str(d)


def test_command_exit_status_and_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sound, lossy = write(tmp_path, "sound", *SOUND), write(tmp_path, "lossy", *LOSSY)
    out = tmp_path / "pages" / "compare.html"
    assert cli.main(["compare", sound, lossy, "--out", str(out)]) == 1
    assert "passed -> failed" in capsys.readouterr().out
    html = out.read_text()
    assert "verdict: B is worse" in html and "lost_acked_writes" in html and "+38 %" in html
    assert "http" not in html and "<script" not in html  # self-contained
    assert cli.main(["compare", lossy, sound, "--out", str(out)]) == 0
    assert (
        cli.main(["compare", sound, sound, "--out", str(out), "--max", "lost_acked_writes=0"]) == 0
    )


def test_page_escapes_what_the_runs_say(tmp_path: Path) -> None:
    from harness import pages

    cmp = compare.compare(
        run("a", t(SET)), run("<b>", t(SET, "failed", "<script>alert(1)</script>"))
    )
    html = pages.comparison_page(cmp)
    assert "<script>alert" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["compare", "MISSING", "MISSING2"], "MISSING: no such report directory"),
        (["compare", "{a}", "{b}", "--max", "lost"], "--max 'lost': use METRIC=NUMBER"),
        (["compare", "{a}", "{b}", "--max", "x=5%"], "--max takes a value"),
        (["compare", "{a}", "{b}", "--max-increase", "nothing_like_it=1"], "no test in either run"),
        (["compare", "{a}", "{junk}"], "not a redis-cluster-harness summary"),
        (["compare", "{a}", "{empty}"], "no summary.json"),
        (["compare", "{a}", "{a}", "--out", "{empty}"], "is a directory"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    a = write(tmp_path, "a", *SOUND)
    junk = tmp_path / "junk.json"
    junk.write_text('{"tests": []}')
    (tmp_path / "empty").mkdir()
    names = {"a": a, "b": a, "junk": str(junk), "empty": str(tmp_path / "empty")}
    argv = [x.format(**names) for x in argv]
    assert (
        cli.main([*argv, "--out", str(tmp_path / "p.html")] if "--out" not in argv else argv) == 2
    )
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
