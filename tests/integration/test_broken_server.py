"""The checkers must catch a server that silently drops acknowledged writes.

The "broken server" is the real binary started through a wrapper with a setting that
makes it evict keys at random once memory runs short, without telling the client: every
SADD is acknowledged, and some acknowledged elements are gone at the final read.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness import Cluster, ClusterSpec, checkers
from harness.impl import available, from_binary
from harness.topology import parse_info
from harness.workload import ENGINES, Engine, Workload, WorkloadSpec


@pytest.fixture
def broken_binary(tmp_path: Path) -> str:
    real = available("redis-7.0") or available("valkey-8.0")
    if real is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    wrapper = tmp_path / "redis-server"
    wrapper.write_text(f'#!/bin/sh\nexec "{real.binary}" "$@" --maxmemory-policy allkeys-random\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


@pytest.mark.parametrize("engine", ENGINES)
def test_checkers_catch_silently_evicted_writes(broken_binary: str, engine: Engine) -> None:
    impl = from_binary(broken_binary)
    with Cluster.start(impl, ClusterSpec(masters=3, replicas=0)) as cluster:
        for node in cluster.nodes:
            used = int(parse_info(str(node.call("INFO", "memory")))["used_memory"])
            node.call("CONFIG", "SET", "maxmemory", used + 200_000)  # a little headroom
        wl = Workload(
            cluster, WorkloadSpec(kind="set", clients=4, rate=None, keys=12, seed=7, engine=engine)
        )
        with wl.running():
            wl.wait_ops(15_000, timeout=120)
        history = wl.final_read()
    result = checkers.check_set(history)
    assert result.acknowledged > 0, "the workload must have had writes acknowledged"
    assert not result.ok and result.lost_count > 0, "evicted acknowledged writes went unnoticed"
    # No fault was injected: every loss happened "before faults", which the suites forbid.
    assert result.lost["before-faults"].count == result.lost_count
    assert "LOST" in result.describe().upper()


@pytest.mark.parametrize("engine", ENGINES)
def test_the_same_load_on_a_sound_server_loses_nothing(engine: Engine) -> None:
    real = available("redis-7.0") or available("valkey-8.0")
    if real is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    with Cluster.start(real, ClusterSpec(masters=3, replicas=0)) as cluster:
        wl = Workload(
            cluster, WorkloadSpec(kind="set", clients=4, rate=None, keys=12, seed=7, engine=engine)
        )
        with wl.running():
            wl.wait_ops(15_000, timeout=120)
        history = wl.final_read()
    result = checkers.check_set(history)
    assert result.ok and result.lost_count == 0, result.describe()
