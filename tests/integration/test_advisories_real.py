"""Advisories reach users on real runs: the even-masters advice of a 2x1 cluster in the
terminal summary and ``summary.json`` (a 3x0 cluster beside it gets none), and the
startup-node advice of ``--backend external`` given one node of a 3-master cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sandbox import PYTEST, Sandbox, assert_one_line_cli_error, outcome

from harness import Cluster, ClusterSpec
from harness.advisories import EVEN_MASTERS, FEW_STARTUP_NODES, SOURCES
from harness.impl import Implementation

SHAPES = """
import pytest

@pytest.mark.cluster(masters=2, replicas=1)
def test_two_masters(cluster):
    pass

@pytest.mark.cluster(masters=3, replicas=0)
def test_three_masters(cluster):
    pass
"""


def test_two_masters_are_advised_in_the_summary(sandbox: Sandbox) -> None:
    (sandbox.dir / "test_shapes.py").write_text(SHAPES)
    reports = sandbox.dir / "reports"
    args = ["test_shapes.py", "--impl", "redis-7.0", "--report-dir", str(reports)]
    res = sandbox.run([*PYTEST, *args], timeout=120)
    assert res.returncode == 0, outcome(res)  # advice, not a failure
    summary = json.loads((reports / "summary.json").read_text())
    (adv,) = summary["advisories"]
    assert adv["code"] == EVEN_MASTERS
    assert adv["message"].startswith("2 masters: failure detection and replica elections")
    assert adv["source"] == SOURCES[EVEN_MASTERS]
    assert adv["tests"] == ["test_shapes.py::test_two_masters"]
    assert "redis-cluster-harness advisories" in res.stdout, outcome(res)
    assert f"{EVEN_MASTERS}: 2 masters: " in res.stdout, outcome(res)
    assert "(cluster of test_shapes.py::test_two_masters)" in res.stdout, outcome(res)


@pytest.fixture
def three_masters() -> Iterator[Cluster]:
    from harness.impl import available

    impl: Implementation | None = available("redis-7.0")
    if impl is None:
        pytest.skip("redis-7.0 is not installed")
    with Cluster.start(impl, ClusterSpec(masters=3, replicas=0)) as c:
        yield c


def test_one_startup_node_of_three_masters_is_advised(
    sandbox: Sandbox, three_masters: Cluster
) -> None:
    seed = three_masters.nodes[0].addr
    res = sandbox.run(
        ["-m", "harness", "run", "--backend", "external", "--nodes", seed], timeout=60
    )
    # every node must be named (the harness talks to no other address): the run stops,
    # and its one line carries the advice as well
    line = assert_one_line_cli_error(res, "that is not in --nodes", f"Advisory {FEW_STARTUP_NODES}")
    assert "1 startup node(s) for 3 masters" in line
