"""harness.soak: runs' summaries aggregated per test, the verdict, soak.json and its text;
harness.soakrun's seeds; the soak's command line."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from harness import soak
from harness.cli import build_parser, run_options_text
from harness.soakrun import derive_seeds

A = "suites/chaos/test_failover.py::test_replica_takes_over"
B = "suites/conformance/test_keyslot.py::test_keyslot_matches_crc16"
C = "suites/chaos/test_partitions.py::test_heal[majority-minority]"


def t(nodeid: str, outcome: str = "passed", message: str = "", **metrics: Any) -> dict[str, Any]:
    test: dict[str, Any] = {"nodeid": nodeid, "outcome": outcome, "metrics": metrics}
    if message:
        test["message"] = message
    return test


def run(index: int, *tests: dict[str, Any], exit_status: int | None = None) -> soak.RunInfo:
    failed = any(x["outcome"] in ("failed", "error") for x in tests)
    code = (1 if failed else 0) if exit_status is None else exit_status
    summary = {
        "schema": "redis-cluster-harness/summary/v1",
        "implementation": {"name": "redis-7.0", "version": "7.0.15"},
        "backend": "local",
        "node_timeout_ms": 2000,
        "tests": list(tests),
    }
    return soak.RunInfo(index, 1000 + index, code, 10.0, f"/r/run-{index}", summary, 1.5)


def build(*runs: soak.RunInfo, interrupted: bool = False) -> dict[str, Any]:
    meta = {"repeat": len(runs), "soak_seed": 7, "cpu_hog": None}
    return soak.build_soak(meta, runs, ["--suite", "chaos"], ["-k", "fail"], interrupted)


# -- aggregation -----------------------------------------------------------------------


def test_counts_per_outcome_and_failures_with_their_seed() -> None:
    runs = [
        run(1, t(A, failover_ms=2100.0), t(B)),
        run(2, t(A, "failed", "AssertionError: no failover in 8000 ms"), t(B)),
        run(3, t(A, failover_ms=2500.0), t(B, "skipped", "redis-6.2 lacks cluster_shards")),
    ]
    records = soak.aggregate(runs)
    assert list(records) == [A, B]
    a, b = records[A], records[B]
    assert a.outcomes == {"passed": 2, "failed": 1}
    assert a.failures == [soak.Seen(2, 1002, "failed", "AssertionError: no failover in 8000 ms")]
    assert b.outcomes == {"passed": 2, "skipped": 1}
    assert b.skips == {"redis-6.2 lacks cluster_shards": 1}
    assert b.failures == []


def test_known_issues_carry_their_reference_and_are_not_failures() -> None:
    ref = "valkey-io/valkey#2171: a restarted node refuses its own nodes.conf"
    runs = [run(1, t(A)), run(2, t(A, "xfailed", f"known server issue {ref}"))]
    rec = soak.aggregate(runs)[A]
    assert rec.failures == []
    assert rec.known == [soak.Seen(2, 1002, "xfailed", ref)]
    assert soak.exit_status(runs) == 0


def test_errors_count_as_failures() -> None:
    rec = soak.aggregate([run(1, t(A, "error", "fixture setup: timeout"))])[A]
    assert rec.failures[0].outcome == "error"


def test_metric_spread_numeric_only_key_metrics_first() -> None:
    runs = [
        run(i, t(A, failover_ms=v, bringup_ms=2000 + i, zz_ms=1, nemesis="kill", ready=True))
        for i, v in enumerate([3000.0, 1000.0, 2000.0, 4000.0], 1)
    ]
    got = soak.aggregate(runs)[A].as_dict()["metrics"]
    assert list(got) == ["failover_ms", "bringup_ms", "zz_ms"]  # no text, no bool
    assert got["failover_ms"] == {"n": 4, "min": 1000.0, "median": 2500.0, "max": 4000.0}
    assert got["bringup_ms"]["median"] == 2002.5


def test_a_metric_only_some_runs_recorded_counts_those() -> None:
    runs = [run(1, t(A, failover_ms=5.0)), run(2, t(A, "failed", "x"))]
    assert soak.aggregate(runs)[A].as_dict()["metrics"]["failover_ms"]["n"] == 1


def test_runs_that_ended_without_a_verdict_do_not_count() -> None:
    aborted = run(2, t(A, "failed", "half a run"), exit_status=2)  # interrupted pytest
    nothing = soak.RunInfo(3, 1003, 5, 1.0, "/r/run-3", None)  # no tests collected
    records = soak.aggregate([run(1, t(A)), aborted, nothing])
    assert records[A].outcomes == {"passed": 1}
    assert soak.exit_status([run(1, t(A)), aborted]) == 2
    assert soak.exit_status([run(1, t(A)), nothing]) == 5


# -- verdict ---------------------------------------------------------------------------


def test_exit_status() -> None:
    ok = run(1, t(A))
    bad = run(2, t(A, "failed", "boom"))
    assert soak.exit_status([ok, ok]) == 0
    assert soak.exit_status([ok, bad]) == 1
    assert soak.exit_status([ok], interrupted=True) == 130
    assert soak.exit_status([run(1, t(A), exit_status=1)]) == 1  # failed at session end
    assert soak.exit_status([]) == 0


def test_replay_command_has_the_seed_and_selects_the_test() -> None:
    line = soak.replay_command(["--suite", "chaos"], ["-x"], 42, A)
    assert shlex.split(line) == [
        "python",
        "-m",
        "harness",
        "run",
        "--suite",
        "chaos",
        "--seed",
        "42",
        "--",
        "-x",
        "-k",
        "test_replica_takes_over",
    ]


def test_k_name_keeps_parameters_pytest_accepts() -> None:
    assert soak.k_name(C) == "test_heal[majority-minority]"
    assert soak.k_name("t.py::test_x[a b]") == "test_x"
    assert soak.k_name("t.py::TestK::test_y") == "test_y"


# -- soak.json and its text ------------------------------------------------------------


def test_build_soak_schema_runs_tests_verdict() -> None:
    runs = [run(1, t(A, failover_ms=2000.0)), run(2, t(A, "failed", "AssertionError: late"))]
    doc = build(*runs)
    assert doc["schema"] == soak.SCHEMA
    assert doc["implementation"]["name"] == "redis-7.0"
    assert [r["seed"] for r in doc["runs"]] == [1001, 1002]
    assert doc["runs"][1]["totals"] == {}  # the fake summaries have none
    (test,) = doc["tests"]
    assert test["runs"] == 2
    assert test["failures"][0]["seed"] == 1002
    assert "--seed 1002" in test["failures"][0]["replay"]
    assert "-k test_replica_takes_over" in test["failures"][0]["replay"]
    assert doc["verdict"] == {
        "failures": 1,
        "known_issues": 0,
        "runs_failed_without_a_failed_test": [],
        "exit_status": 1,
    }


def test_render_lines() -> None:
    ref = "known server issue valkey-io/valkey#2171: refuses its nodes.conf"
    runs = [
        run(1, t(A, failover_ms=2000.0), t(B, bringup_ms=2100)),
        run(2, t(A, "failed", "AssertionError: late"), t(B, "xfailed", ref)),
    ]
    text = "\n".join(soak.render(build(*runs)))
    assert "seeds: 1001 1002 (soak seed 7)" in text
    assert "cpu hog: none" in text
    row_a = next(ln for ln in text.splitlines() if ln.startswith(A))
    assert row_a.split()[1:] == ["1", "1", "0"]  # passed failed xfailed
    assert text.index("failover_ms") < text.index("bringup_ms")
    assert f"{A}  run 2 seed 1002 failed: AssertionError: late" in text
    assert "replay: python -m harness run --suite chaos --seed 1002 -- -k fail -k" in text
    assert f"{B}  run 2 seed 1002: valkey-io/valkey#2171" in text
    assert text.splitlines()[-1] == "verdict: 1 failures, 1 known issues in 2 runs; exit 1"
    assert all(ln == ln.rstrip() for ln in text.splitlines())


def test_render_says_a_hog_ran_and_which_runs_did_not_count() -> None:
    doc = build(run(1, t(A)), soak.RunInfo(2, 1002, 4, 1.0, "/r/run-2", None))
    doc["cpu_hog"] = {"workers": 2, "tool": "stress-ng"}
    text = "\n".join(soak.render(doc))
    assert "cpu hog: 2 busy workers (stress-ng)" in text
    assert "run 2 seed 1002 ended with exit 4 and does not count" in text
    assert text.endswith("exit 4")


# -- seeds and the command line --------------------------------------------------------


def test_derive_seeds_replayable_and_distinct() -> None:
    assert derive_seeds(5, 20) == derive_seeds(5, 20)
    assert derive_seeds(5, 3) == derive_seeds(5, 20)[:3]
    assert len(set(derive_seeds(5, 200))) == 200
    assert derive_seeds(5, 3) != derive_seeds(6, 3)
    assert all(0 <= s < 2**63 for s in derive_seeds(1, 50))


def test_soak_passes_run_options_on_except_its_own() -> None:
    argv = ["soak", "--repeat", "3", "--cpu-hog", "1", "--suite", "conformance", "--seed", "9"]
    argv += ["--report-dir", "d", "--tls", "--node-timeout", "500", "--", "-k", "keyslot"]
    args = build_parser().parse_args(argv)
    assert (args.repeat, args.cpu_hog, args.pytest_args) == (3, 1, ["-k", "keyslot"])
    passed = run_options_text(vars(args))
    assert passed == ["--node-timeout", "500", "--suite", "conformance", "--tls"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--repeat", "0"], "--repeat must be in 1..100000"),
        (["--cpu-hog", "x"], "--cpu-hog must be a whole number"),
    ],
)
def test_soak_bad_numbers(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["soak", *argv])
    assert exc.value.code == 2
    assert says in capsys.readouterr().err
