"""Live progress in a real run that is not on a terminal (a CI log): ``python -m harness
run`` of a chaos test that kills a master under load prints timestamped lines for the
bring-up, the fault and the failover with op counts and the seed; with ``-n 2`` they come
from the worker; with ``-q`` there are none."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.impl import available

pytestmark = pytest.mark.skipif(available("redis-7.0") is None, reason="redis-7.0 is not installed")

TEST = "kill_master_under_load"
STAMP = r"^\d\d:\d\d:\d\d "


def _run(tmp_path: Path, *extra: str, select: str = TEST, quiet: bool = False) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--impl", "redis-7.0", "--suite", "chaos"]
        + ["--report-dir", str(tmp_path / "rep"), "--seed", "11", *extra, "--", "-k", select]
        + (["-q"] if quiet else []),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "\x1b[" not in proc.stdout  # no cursor codes, no colours: not a terminal
    return proc.stdout


def _progress(out: str, worker: str = "") -> list[str]:
    prefix = STAMP + (re.escape(f"[{worker}] ") if worker else "")
    return [ln for ln in out.splitlines() if re.match(prefix + r"test_consistency\.py::", ln)]


def _phases_in_order(lines: list[str]) -> None:
    wanted = [
        r"setup \| seed 11$",
        r"bring-up: 6 nodes",
        r"cluster ready",
        r"load running: .*\| ops \d+ \(ok \d+, fail \d+, info \d+\) \| seed 11$",
        r"fault injected: kill 127\.0\.0\.1:\d+ \| ops [1-9]\d* ",
        r"failover: fail-flag ",
        r"failover: promoted 127\.0\.0\.1:\d+ \d+ ms \| ops ",
        r"healing: start ",
        r"final read: 24 keys",
        r"passed \| ops ",
    ]
    at = 0
    for pattern in wanted:
        found = [i for i, ln in enumerate(lines) if i >= at and re.search(pattern, ln)]
        assert found, f"no {pattern!r} after line {at} of:\n" + "\n".join(lines)
        at = found[0] + 1


def test_plain_lines_in_a_log(tmp_path: Path) -> None:
    _phases_in_order(_progress(_run(tmp_path)))


def test_lines_of_an_xdist_worker_reach_the_log(tmp_path: Path) -> None:
    out = _run(tmp_path, "-n", "2")
    worker = re.search(r"\[(gw\d)\] test_consistency", out)
    assert worker, out[-3000:]
    _phases_in_order(_progress(out, worker.group(1)))


def test_quiet_run_shows_no_progress(tmp_path: Path) -> None:
    out = _run(tmp_path, select="kill_master_promotes", quiet=True)
    assert not [ln for ln in out.splitlines() if re.match(STAMP, ln)], out
