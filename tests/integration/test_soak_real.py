"""``python -m harness soak`` for real: two runs of a fast selection against the default
implementation, plain and beside a CPU hog; the hog is gone afterwards."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from sandbox import Sandbox, assert_one_line_cli_error, outcome

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not on PATH"
)

TIMEOUT = 60  # two runs of three keyslot tests take about 15 s
SELECTION = ["--suite", "conformance", "--", "-k", "keyslot"]
TESTS = (
    "suites/conformance/test_keyslot.py::test_keyslot_matches_crc16",
    "suites/conformance/test_keyslot.py::test_keyslot_follows_the_specification_examples",
)


def soak(box: Sandbox, *args: str) -> tuple[str, dict[str, Any]]:
    res = box.run(["-m", "harness", "soak", "--report-dir", "out", *args], timeout=TIMEOUT)
    assert res.returncode == 0, outcome(res)
    return res.stdout, json.loads((box.dir / "out" / "soak.json").read_text())


def check_two_clean_runs(text: str, doc: dict[str, Any]) -> None:
    assert doc["schema"] == "redis-cluster-harness/soak/v1"
    seeds = [r["seed"] for r in doc["runs"]]
    assert len(set(seeds)) == 2, doc["runs"]
    assert all(r["counted"] and r["exit_status"] == 0 for r in doc["runs"])
    assert doc["verdict"]["exit_status"] == 0
    for r, seed in zip(doc["runs"], seeds, strict=True):  # each run had its own seed
        summary = json.loads((Path(r["report_dir"]) / "summary.json").read_text())
        assert summary["seed"] == seed
    assert f"seeds: {seeds[0]} {seeds[1]}" in text
    for nodeid in TESTS:
        row = next(ln for ln in text.splitlines() if ln.startswith(nodeid + " "))
        assert row.split()[1:] == ["2", "0", "0"], text  # passed failed xfailed
    by_id = {test["nodeid"]: test for test in doc["tests"]}
    assert by_id[TESTS[0]]["metrics"]["bringup_ms"]["n"] == 2
    assert "verdict: 0 failures, 0 known issues in 2 runs; exit 0" in text


def test_soak_two_runs(sandbox: Sandbox) -> None:
    text, doc = soak(sandbox, "--repeat", "2", *SELECTION)
    check_two_clean_runs(text, doc)
    assert doc["cpu_hog"] is None
    assert "cpu hog: none" in text
    sandbox.assert_nothing_left()


def test_soak_replays_from_its_seed(sandbox: Sandbox) -> None:
    _, first = soak(sandbox, "--repeat", "1", "--seed", "12345", *SELECTION)
    _, again = soak(sandbox, "--repeat", "1", "--seed", "12345", *SELECTION)
    assert first["runs"][0]["seed"] == again["runs"][0]["seed"]


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed")
def test_soak_beside_a_cpu_hog_same_verdicts_and_the_hog_is_gone(sandbox: Sandbox) -> None:
    text, doc = soak(sandbox, "--repeat", "2", "--cpu-hog", "1", *SELECTION)
    check_two_clean_runs(text, doc)
    hog = doc["cpu_hog"]
    assert hog["workers"] == 1 and hog["tool"] == "stress-ng", hog
    assert "cpu hog: 1 busy workers (stress-ng)" in text
    assert not os.path.exists(f"/proc/{hog['pid']}"), hog  # the soak waited for it
    sandbox.assert_nothing_left()  # its workers too (they work in the sandbox)


def test_soak_bad_input_one_line(sandbox: Sandbox) -> None:
    res = sandbox.run(["-m", "harness", "soak", "--impl", "nosuch"], timeout=TIMEOUT)
    assert_one_line_cli_error(res, "--impl nosuch")
    env = {**sandbox.env, "PATH": str(sandbox.dir)}  # no stress-ng there
    binary = shutil.which("redis-server")
    assert binary is not None
    argv = ["-m", "harness", "soak", "--cpu-hog", "1", "--impl-binary", binary]
    res = sandbox.run(argv, timeout=TIMEOUT, env=env)
    assert_one_line_cli_error(res, "--cpu-hog needs stress-ng", "apt-get install stress-ng")
    sandbox.assert_nothing_left()
