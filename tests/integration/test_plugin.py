"""The pytest plugin end to end, in a separate pytest process (pytester)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.impl import FIXTURES, available

pytestmark = pytest.mark.skipif(available("redis-7.0") is None, reason="redis-7.0 is not installed")

TESTS = """
import pytest

@pytest.mark.cluster(masters=2, replicas=0)
def test_shape(cluster, metrics):
    assert len(cluster.nodes) == 2
    metrics.record("answer", 42)

@pytest.mark.requires("replicated_setslot")
def test_needs_valkey(cluster):
    pass

def test_fails(cluster):
    assert cluster.nodes[0].call("PING") == "PONG"
    assert False, "deliberate"

def test_seeded(rng, metrics):
    metrics.record("draw", rng.randrange(10**9))
"""


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:  # type: ignore[type-arg]
    pytester.makepyfile(test_sample=TESTS)
    report = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "--impl",
        "redis-7.0",
        "--report-dir",
        str(report),
        "--junitxml",
        str(report / "j.xml"),
        *args,
    )
    return result, json.loads((report / "summary.json").read_text())


def test_summary_metrics_junit_and_logs(pytester: pytest.Pytester) -> None:
    result, summary = _run(pytester, "--seed", "7", "--node-timeout", "1500")
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    assert summary["implementation"]["name"] == "redis-7.0"
    assert summary["implementation"]["version"] == "7.0.15" or summary["implementation"]["version"]
    assert (
        summary["backend"] == "local"
        and summary["seed"] == 7
        and summary["node_timeout_ms"] == 1500
    )
    tests = {t["nodeid"].split("::")[1]: t for t in summary["tests"]}
    assert tests["test_shape"]["outcome"] == "passed"
    assert tests["test_shape"]["metrics"]["answer"] == 42
    assert tests["test_shape"]["metrics"]["bringup_ms"] > 0
    assert tests["test_needs_valkey"]["outcome"] == "skipped"
    assert "redis-7.0 lacks replicated_setslot" in tests["test_needs_valkey"]["message"]
    assert (
        tests["test_fails"]["outcome"] == "failed"
        and "deliberate" in tests["test_fails"]["message"]
    )
    assert summary["totals"] == {"passed": 2, "skipped": 1, "failed": 1}
    # node logs of the failed test: in the report and copied next to summary.json
    result.stdout.fnmatch_lines(
        ["*node n0 127.0.0.1:* log (tail)*", "*Ready to accept connections*"]
    )
    assert list((pytester.path / "out" / "logs").glob("*test_fails*/cluster0-n0-*.log"))
    # metrics table and JUnit properties
    result.stdout.fnmatch_lines(["*redis-cluster-harness metrics*", "*test_shape*passed*"])
    junit = ET.parse(pytester.path / "out" / "j.xml")
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props.get("metric:answer") == "42"
    result.stdout.fnmatch_lines(["*redis-cluster-harness: redis 7.0.15*seed 7*"])


KNOWN_ISSUE = """
def test_hits_the_bug(cluster):
    cluster.nodes[0].call("DEBUG", "LOG", "demo bug hit here")
    assert False, "node spinning"

def test_same_failure_without_the_log_line(cluster):
    assert False, "node spinning"
"""


def test_known_server_issue_is_xfailed_only_with_its_log_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fixtures = pytester.path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    toml = fixtures / "implementations.toml"
    header = '[profiles."redis-7.0"]\n'
    issue = '{ ref = "demo#1", text = "node spinning", log = "demo bug hit" }'
    before, found, after = toml.read_text().partition(header)
    assert found
    section, nxt, rest = after.partition("\n[")
    if "known_issues = [\n" in section:  # the profile has known issues: one more
        section = section.replace("known_issues = [\n", f"known_issues = [\n  {issue},\n", 1)
    else:
        section = f"known_issues = [{issue}]\n" + section
    toml.write_text(before + header + section + nxt + rest)
    monkeypatch.setenv("HARNESS_FIXTURES", str(fixtures))
    pytester.makepyfile(test_known=KNOWN_ISSUE)
    report = pytester.path / "out"
    result = pytester.runpytest_subprocess("--impl", "redis-7.0", "--report-dir", str(report))
    result.assert_outcomes(failed=1, xfailed=1)
    tests = json.loads((report / "summary.json").read_text())["tests"]
    outcome = {t["nodeid"].split("::")[1]: (t["outcome"], t["message"]) for t in tests}
    assert outcome["test_hits_the_bug"] == ("xfailed", "known server issue demo#1")
    assert outcome["test_same_failure_without_the_log_line"][0] == "failed"


def test_same_seed_same_draws(pytester: pytest.Pytester) -> None:
    draws = []
    for seed in ("11", "11", "12"):
        _, summary = _run(pytester, "--seed", seed, "-k", "seeded")
        draws.append(summary["tests"][0]["metrics"]["draw"])
    assert draws[0] == draws[1] != draws[2]


def test_no_summary_for_projects_that_do_not_use_the_harness(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_x():\n    assert True\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()
    assert "redis-cluster-harness:" not in result.stdout.str()  # no header, no summary line


def test_markers_are_registered_with_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.cluster(*", "@pytest.mark.requires(*"])
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        ["*Redis Cluster harness*", "*--impl=NAME*", "*--impl-binary=PATH*"]
    )


def test_cli_run_writes_report_and_exit_status(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "rep"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--impl",
            "redis-7.0",
            "--suite",
            "conformance",
            "--report-dir",
            str(out),
            "--seed",
            "3",
            "--",
            "-k",
            "keyslot_matches",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"] == {"passed": 1} and summary["seed"] == 3
    assert (out / "junit.xml").exists()


def test_server_args_repeat_and_reach_every_node(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_args="""
import pytest

@pytest.mark.cluster(masters=1, replicas=0)
def test_settings(cluster):
    node = cluster.nodes[0]
    assert node.call("CONFIG", "GET", "hz") == {"hz": "20"}
    assert node.call("CONFIG", "GET", "maxmemory") == {"maxmemory": "104857600"}
"""
    )
    result = pytester.runpytest_subprocess(
        "--impl",
        "redis-7.0",
        "--server-arg",
        "hz 20",
        "--server-arg",
        "maxmemory 100mb",
        "--report-dir",
        str(pytester.path / "out"),
    )
    result.assert_outcomes(passed=1)
