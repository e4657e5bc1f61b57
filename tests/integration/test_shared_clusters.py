"""Shared clusters and parallel workers end to end, in a separate pytest process.

A cluster shared by ``shares_cluster`` tests must be the same cluster for them (that is
the saving), empty at the start of each, and replaced when a test leaves it changed; the
report must say which test did. Under pytest-xdist the workers run one seed and the
controller writes one summary of them all.
"""

from __future__ import annotations

import json

import pytest

from harness.impl import available

pytestmark = pytest.mark.skipif(available("redis-7.0") is None, reason="redis-7.0 is not installed")

SHARED = """
import pytest

pytestmark = [pytest.mark.shares_cluster, pytest.mark.cluster(masters=1, replicas=1)]

def test_a_writes(cluster, metrics):
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
    cluster.nodes[0].call("SET", "left-behind", "1")

def test_b_sees_an_empty_cluster(cluster, metrics):
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
    assert all(int(n.call("DBSIZE")) == 0 for n in cluster.nodes)

def test_c_breaks_it(cluster, metrics):
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
    cluster.faults.kill(cluster.nodes[1])

def test_d_gets_a_new_one(cluster, metrics):
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
    assert cluster.check(cluster.nodes).ok

@pytest.mark.cluster(masters=2, replicas=0)
def test_e_other_shape(cluster, metrics):
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
"""


def _summary(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict]:  # type: ignore[type-arg]
    report = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "--impl", "redis-7.0", "--report-dir", str(report), *args
    )
    return result, json.loads((report / "summary.json").read_text())


def _ports(summary: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {t["nodeid"].split("::")[-1]: t["metrics"]["ports"] for t in summary["tests"]}


def test_shared_cluster_is_reused_emptied_and_replaced_when_broken(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_shared=SHARED)
    result, summary = _summary(pytester, "-p", "no:randomly")
    result.assert_outcomes(passed=5)
    ports = _ports(summary)
    assert (
        ports["test_a_writes"] == ports["test_b_sees_an_empty_cluster"] == ports["test_c_breaks_it"]
    )
    assert ports["test_d_gets_a_new_one"] != ports["test_c_breaks_it"]  # replaced
    assert len(ports["test_e_other_shape"].split(",")) == 2
    (note,) = summary["shared_cluster_replaced"]
    assert note.startswith("test_shared.py::test_c_breaks_it left its shared cluster changed")
    result.stdout.fnmatch_lines(["*test_c_breaks_it left its shared cluster changed*"])


def test_no_shared_clusters_starts_one_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shared=SHARED)
    result, summary = _summary(pytester, "--no-shared-clusters", "-k", "test_a or test_b")
    result.assert_outcomes(passed=2, deselected=3)
    ports = _ports(summary)
    assert ports["test_a_writes"] != ports["test_b_sees_an_empty_cluster"]


PARALLEL = """
import pytest

@pytest.mark.parametrize("i", range(4))
def test_own(cluster, harness_seed, metrics, i):
    import os
    metrics.record("seed", harness_seed)
    metrics.record("pid", os.getpid())
    assert cluster.check(cluster.nodes).ok

@pytest.mark.shares_cluster
@pytest.mark.parametrize("i", range(3))
def test_shared(cluster, metrics, rng, artifacts, i):
    import os
    metrics.record("draw", rng.randrange(10**9))
    metrics.record("artifacts", artifacts.name)
    metrics.record("pid", os.getpid())
    metrics.record("ports", ",".join(str(n.port) for n in cluster.nodes))
"""


def test_workers_share_one_seed_and_write_one_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_parallel=PARALLEL)
    result, summary = _summary(pytester, "-n", "2")
    result.assert_outcomes(passed=7)
    tests = {t["nodeid"]: t for t in summary["tests"]}
    assert len(tests) == 7 and summary["totals"] == {"passed": 7}
    assert summary["implementation"]["name"] == "redis-7.0"  # sent by a worker
    own = [t for n, t in tests.items() if "test_own" in n]
    assert {t["metrics"]["seed"] for t in own} == {summary["seed"]}
    assert len({t["metrics"]["pid"] for t in own}) == 2  # both workers ran tests
    shared = [t for n, t in tests.items() if "test_shared" in n]
    assert len({t["metrics"]["pid"] for t in shared}) == 1  # one worker: one cluster
    assert len({t["metrics"]["ports"] for t in shared}) == 1
    assert all("@" not in n for n in tests)  # xdist's group suffix is not in the report


def test_a_seed_draws_the_same_in_parallel_and_in_one_process(pytester: pytest.Pytester) -> None:
    """The group suffix xdist needs in a test's id must not reach what the id seeds or
    names: the same seed gives the same draws and artifact folders with and without -n."""
    pytester.makepyfile(test_parallel=PARALLEL)
    _, serial = _summary(pytester, "--seed", "5", "-k", "test_shared")
    _, parallel = _summary(pytester, "--seed", "5", "-k", "test_shared", "-n", "2")

    def seen(summary: dict) -> dict[str, tuple[object, object]]:  # type: ignore[type-arg]
        return {
            t["nodeid"]: (t["metrics"]["draw"], t["metrics"]["artifacts"]) for t in summary["tests"]
        }

    assert seen(serial) == seen(parallel)
    assert all("harness-shared" not in a for _, a in seen(parallel).values())
