"""``python -m harness compare`` and ``report`` over real runs: the conformance suite's
write-safety test against a sound server twice and against one that loses writes (the
real binary behind a wrapper that evicts keys at random once memory runs short, as in
test_broken_server.py). compare must tell them apart, in both directions, by exit status.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sandbox import Sandbox, assert_one_line_cli_error, outcome

from harness import Cluster, ClusterSpec
from harness.impl import Implementation, available
from harness.topology import parse_info

TIMEOUT = 60  # one run of the one test takes about 10 s
TEST = "suites/conformance/test_workload.py::test_fault_free_writes_are_all_read_back"
SELECTION = ["--suite", "conformance", "--", "-k", "fault_free_writes_are_all_read_back"]
HEADROOM = 60_000  # bytes over an idle master's memory: the test's writes need far more


def idle_master_memory(real: Implementation) -> int:
    """What a master of a formed, idle cluster uses: the wrapper's limit sits just above,
    so the cluster forms and the workload's writes push it into evicting."""
    with Cluster.start(real, ClusterSpec()) as cluster:
        return max(
            int(parse_info(str(n.call("INFO", "memory")))["used_memory"])
            for n in cluster.initial_masters
        )


@pytest.fixture
def lossy_binary(tmp_path: Path) -> tuple[Implementation, str]:
    real = available("redis-7.0") or available("valkey-8.0")
    if real is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    limit = idle_master_memory(real) + HEADROOM
    wrapper = tmp_path / "bin" / "redis-server"
    wrapper.parent.mkdir()
    wrapper.write_text(
        f'#!/bin/sh\nexec "{real.binary}" "$@" --maxmemory-policy allkeys-random '
        f"--maxmemory {limit}\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return real, str(wrapper)


def run(box: Sandbox, report_dir: str, *impl: str, expect: int) -> None:
    argv = ["-m", "harness", "run", *impl, "--report-dir", report_dir, *SELECTION]
    res = box.run(argv, timeout=TIMEOUT)
    assert res.returncode == expect, outcome(res)


def compare(box: Sandbox, a: str, b: str, *more: str) -> tuple[int, str]:
    res = box.run(["-m", "harness", "compare", a, b, *more], timeout=TIMEOUT)
    assert "Traceback" not in res.stderr, outcome(res)
    return res.returncode, res.stdout


def test_compare_tells_a_server_that_loses_writes_from_a_sound_one(
    sandbox: Sandbox, lossy_binary: tuple[Implementation, str]
) -> None:
    real, wrapper = lossy_binary
    run(sandbox, "sound", "--impl-binary", real.binary, expect=0)
    run(sandbox, "sound2", "--impl-binary", real.binary, expect=0)
    run(sandbox, "lossy", "--impl-binary", wrapper, expect=1)
    lost = json.loads((sandbox.dir / "lossy" / "summary.json").read_text())["tests"][0]
    assert lost["nodeid"] == TEST and lost["metrics"]["lost_acked_writes"] > 0, lost

    code, text = compare(sandbox, "sound", "lossy")
    assert code == 1, text
    assert "passed -> failed" in text and "verdict: B is worse" in text
    row = next(ln for ln in text.splitlines() if "lost_acked_writes" in ln)
    n = lost["metrics"]["lost_acked_writes"]
    assert row.split()[2:6] == ["0", str(n), f"+{n}", "worse"], text
    page = (sandbox.dir / "reports" / "compare.html").read_text()
    assert "lost_acked_writes" in page and "B is worse" in page

    code, text = compare(sandbox, "lossy", "sound")  # B is the better one
    assert code == 0 and "failed -> passed" in text, text
    code, text = compare(sandbox, "sound", "sound2", "--max", "lost_acked_writes=0")
    assert code == 0 and "verdict: B is not worse than A" in text, text
    code, text = compare(sandbox, "sound2", "lossy", "--max", "lost_acked_writes=0")
    assert code == 1 and "over --max lost_acked_writes=0" in text, text

    res = sandbox.run(
        ["-m", "harness", "report", "sound", "sound2", "lossy", "--out", "m/matrix.html"],
        timeout=TIMEOUT,
    )
    assert res.returncode == 0, outcome(res)
    html = (sandbox.dir / "m" / "matrix.html").read_text()
    assert html.count('href="../sound') == 2 and 'href="../lossy/' in html
    assert f"lost_acked_writes {n}" in html
    sandbox.assert_nothing_left()


def test_compare_bad_input_one_line(sandbox: Sandbox) -> None:
    res = sandbox.run(["-m", "harness", "compare", "nowhere", "nowhere"], timeout=TIMEOUT)
    assert_one_line_cli_error(res, "nowhere: no such report directory")
    res = sandbox.run(["-m", "harness", "compare", ".", ".", "--max", "x"], timeout=TIMEOUT)
    assert_one_line_cli_error(res, "--max 'x': use METRIC=NUMBER")
    assert res.returncode == 2
