"""What grows with the number of nodes: the bring-up's timeout, the open-file limit, the
MEET plan and the fan-out that asks every node at once."""

from __future__ import annotations

import resource

import pytest

from harness import ClusterSpec, fanout
from harness.backends.local import FILES_PER_NODE, FILES_RESERVE, ensure_open_files
from harness.errors import HarnessError
from harness.formation import meet_pairs
from harness.spec import READY_BASE_NODES, READY_S_PER_NODE


def test_default_ready_timeout_grows_past_30_nodes() -> None:
    assert ClusterSpec(masters=3, replicas=1).ready_timeout_s == 30.0
    assert ClusterSpec(masters=10, replicas=2).ready_timeout_s == 30.0  # 30 nodes
    big = ClusterSpec(masters=50, replicas=1)
    assert big.ready_timeout_s == pytest.approx(30.0 + READY_S_PER_NODE * (100 - READY_BASE_NODES))


def test_a_given_ready_timeout_is_kept() -> None:
    assert ClusterSpec(masters=50, replicas=1, ready_timeout_s=12).ready_timeout_s == 12


def test_open_files_limit_is_raised_when_nodes_need_it() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ensure_open_files(1)  # always within any limit
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
    nodes = (soft - FILES_RESERVE) // FILES_PER_NODE + 10  # needs more than the soft limit
    need = FILES_RESERVE + FILES_PER_NODE * nodes
    if hard != resource.RLIM_INFINITY and hard < need:
        with pytest.raises(HarnessError, match="open files; the hard limit is"):
            ensure_open_files(nodes)
        return
    try:
        ensure_open_files(nodes)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("n", [1, 2, 3, 6, 7, 30, 100])
def test_every_pair_meets_once_and_no_node_starts_more_than_half(n: int) -> None:
    nodes = list(range(n))
    plan = meet_pairs(nodes)  # type: ignore[arg-type]
    pairs = [frozenset((a, b)) for a, met in plan.items() for b in met]
    assert len(pairs) == len(set(pairs)) == n * (n - 1) // 2
    assert all(len(p) == 2 for p in pairs)
    assert max(len(met) for met in plan.values()) <= n // 2


def test_fanout_keeps_order_and_raises_after_every_call() -> None:
    done: list[int] = []

    def call(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        done.append(x)
        return x * 10

    assert fanout.each(lambda x: x * 10, range(40)) == [x * 10 for x in range(40)]
    with pytest.raises(ValueError, match="three"):
        fanout.each(call, range(20))
    assert sorted(done) == [x for x in range(20) if x != 3]  # none was abandoned
