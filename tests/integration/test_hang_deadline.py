"""Hang protection end to end: a server that hangs behind the harness's back fails its
test with the node states within the deadline, and the run goes on with the next test.

The hung server is the real one started through a wrapper that, once the cluster is
formed and a moment has passed, stops its whole process group with SIGSTOP (the wrapper
included, so the node's process shows state T). The inner test blocks in a client call
without a socket timeout: only the deadline can end it.
"""

from __future__ import annotations

import json
import re
import stat
import sys
import time
from pathlib import Path

import pytest
from sandbox import PYTEST, Sandbox, outcome

from harness.deadline import base_budget_s
from harness.impl import available

WRAPPER = """#!{python}
import os, re, signal, socket, subprocess, sys, time

REAL = {real!r}
args = sys.argv[1:]
if os.environ.get("HANG_AFTER_READY") != "1" or not args or args[0].startswith("-"):
    os.execv(REAL, [REAL, *args])  # --version, and every server of the other tests
server = subprocess.Popen([REAL, *args])
port = int(re.search(r"^port (\\d+)$", open(args[0]).read(), re.M).group(1))
while server.poll() is None:  # until the cluster is formed: the harness's bring-up is over
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"CLUSTER INFO\\r\\n")
            if b"cluster_state:ok" in s.recv(65536):
                break
    except OSError:
        pass
    time.sleep(0.05)
time.sleep(2)  # the test is under way
os.killpg(0, signal.SIGSTOP)  # the server and this wrapper: state T
sys.exit(server.wait())
"""

TESTS = """
import pytest
import redis


@pytest.fixture
def hang_after_ready(monkeypatch):
    monkeypatch.setenv("HANG_AFTER_READY", "1")  # read by the wrapper this test's server runs


@pytest.mark.cluster(masters=1, replicas=0)
def test_hangs(hang_after_ready, cluster):
    node = cluster.nodes[0]
    client = redis.Redis(host=node.host, port=node.port)  # no socket timeout
    while True:
        client.ping()  # answers until the server is stopped, then blocks for good


@pytest.mark.cluster(masters=1, replicas=0)
def test_next(cluster):
    assert cluster.nodes[0].call("PING") == "PONG"
"""

NODE_TIMEOUT_MS = 500
RUN_LIMIT_S = 150.0  # the whole inner run (normally ~25 s: one deadline, two bring-ups)


@pytest.fixture
def hanging_binary(tmp_path: Path) -> str:
    real = available("redis-7.0") or available("valkey-8.0")
    if real is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    wrapper = tmp_path / "bin" / "redis-server"
    wrapper.parent.mkdir()
    wrapper.write_text(WRAPPER.format(python=sys.executable, real=real.binary))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def _xdist() -> list[str]:
    try:
        import xdist  # noqa: F401
    except ImportError:
        pytest.skip("pytest-xdist is not installed")
    return ["-n", "2"]


@pytest.mark.parametrize("workers", ["serial", "xdist"])
def test_a_hung_server_fails_its_test_with_node_states_and_the_run_goes_on(
    sandbox: Sandbox, hanging_binary: str, workers: str
) -> None:
    (sandbox.dir / "test_hang.py").write_text(TESTS)
    report = sandbox.dir / "out"
    argv = [*PYTEST, "test_hang.py", "--impl-binary", hanging_binary]
    argv += ["--node-timeout", str(NODE_TIMEOUT_MS), "--report-dir", str(report)]
    argv += _xdist() if workers == "xdist" else []
    t0 = time.monotonic()
    res = sandbox.run(argv, timeout=RUN_LIMIT_S)
    took = time.monotonic() - t0
    out = outcome(res)
    assert res.returncode == 1, out
    assert re.search(r"\b1 failed, 1 passed\b", res.stdout), out
    # the failure: the deadline derived from the node timeout, and the node's state
    budget = base_budget_s(NODE_TIMEOUT_MS / 1000)
    assert f"test_hang.py::test_hangs (call) ran past its deadline of {budget:.1f} s" in res.stdout
    assert "DeadlineExceeded" in res.stdout, out
    assert re.search(r"process: pid \d+ state T \[stopped\]", res.stdout), out
    assert "INFO: no answer within 0.5 s" in res.stdout, out
    assert re.search(r"log\| .*Cluster state changed: ok", res.stdout), out
    summary = json.loads((report / "summary.json").read_text())
    tests = {t["nodeid"].split("::")[1]: t for t in summary["tests"]}
    assert tests["test_hangs"]["outcome"] == "failed", out
    assert "ran past its deadline" in tests["test_hangs"]["message"], out
    assert tests["test_next"]["outcome"] == "passed", out
    # within the deadline: bring-up (bounded by its own waits) + the budget + teardown
    assert tests["test_hangs"]["duration_s"] < budget + 30, out
    assert took < RUN_LIMIT_S, out
    sandbox.assert_nothing_left()
