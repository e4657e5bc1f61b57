"""What grows with the number of nodes: the bring-up's timeout and the open-file limit."""

from __future__ import annotations

import resource

import pytest

from harness import ClusterSpec
from harness.backends.local import FILES_PER_NODE, FILES_RESERVE, ensure_open_files
from harness.errors import HarnessError
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
