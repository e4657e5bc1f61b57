"""Chaos through Toxiproxy: link faults between clients and nodes. Every node announces
its proxies, so clients following MOVED stay behind them."""

from __future__ import annotations

import time

import pytest
import redis

from harness import Cluster, key_for_slot
from harness.plugin import Metrics
from harness.wait import wait_for

pytestmark = [
    pytest.mark.cluster(masters=3, replicas=1, proxied=True),
    pytest.mark.requires("runtime_announce"),
]


def _write(client: redis.cluster.RedisCluster, key: str) -> tuple[bool, str]:
    try:
        client.set(key, "v")
        return True, "ok"
    except redis.exceptions.RedisError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def test_clients_see_only_proxy_addresses(cluster: Cluster) -> None:
    announced = {n.public_addr for n in cluster.nodes}
    for n in cluster.nodes:
        view = cluster.view(n)
        assert {e.addr for e in view.nodes} == announced
        for shard in view.shards or ():
            assert {f"{sn.endpoint}:{sn.port}" for sn in shard.nodes} <= announced
    slots = cluster.client().execute_command("CLUSTER SLOTS")
    assert slots, "CLUSTER SLOTS is empty"


def test_latency_makes_clients_time_out_then_recover(cluster: Cluster, metrics: Metrics) -> None:
    master = cluster.initial_masters[0]
    key = key_for_slot(cluster.first_slot(master), prefix="slow:")
    client = cluster.client(socket_timeout=0.2, socket_connect_timeout=0.5)
    assert _write(client, key)[0]
    with cluster.faults.latency(master, ms=400):
        t0 = time.monotonic()
        ok, seen = _write(client, key)
        assert not ok and "Timeout" in seen, f"a 0.2 s client must time out behind 2x400 ms: {seen}"
        assert time.monotonic() - t0 >= 0.2
    recovered = wait_for(
        lambda: (_write(client, key)[0], _write(client, key)[1]), 10, "writes again"
    )
    del recovered
    metrics.record("latency_ms", 400)


def test_cut_clients_fails_one_shard_only_then_recovers(cluster: Cluster) -> None:
    master, other = cluster.initial_masters[0], cluster.initial_masters[1]
    key = key_for_slot(cluster.first_slot(master), prefix="cut:")
    other_key = key_for_slot(cluster.first_slot(other), prefix="cut:")
    client = cluster.client(socket_timeout=1.0, socket_connect_timeout=0.5)
    assert _write(client, key)[0]
    with cluster.faults.cut_clients(master):
        ok, seen = _write(client, key)
        assert not ok, f"a cut client path must fail, got {seen}"
        assert _write(client, other_key)[0], "other shards must keep serving"
    wait_for(lambda: _write(client, key), 15, "writes to the cut shard again")


def test_reset_connections_are_survived_by_reconnecting(cluster: Cluster) -> None:
    master = cluster.initial_masters[2]
    key = key_for_slot(cluster.first_slot(master), prefix="reset:")
    client = cluster.client(socket_timeout=1.0)
    with cluster.faults.reset_connections(master):
        ok, seen = _write(client, key)
        assert not ok, f"a write through a resetting proxy cannot succeed: {seen}"
    wait_for(lambda: _write(client, key), 15, "writes after the resets stop")


def test_proxy_only_cut_does_not_trigger_failover(cluster: Cluster, metrics: Metrics) -> None:
    """Documents a limit: cutting a master's own proxies (client and bus) is not a
    partition. It still pings its peers through *their* proxies, which counts as hearing
    from it, so nobody marks it failed, however long the cut lasts. Use partitions
    (``requires("network_faults")``) to make a node fail."""
    master = cluster.initial_masters[0]
    observe_s = (2 * cluster.spec.node_timeout_ms + 2000) / 1000  # the failover bound
    with cluster.faults.cut_clients(master, bus=True):
        flagged = wait_for_or_none(lambda: cluster.probe_flagged_failed(master), observe_s)
    metrics.record("observed_ms", observe_s * 1000)
    assert flagged is None, f"a proxy-only cut made the cluster flag {master.addr}: {flagged}"
    cluster.wait_ready(20)
    assert master in cluster.masters()


def wait_for_or_none(probe: object, seconds: float) -> str | None:
    """Watch ``probe`` for ``seconds``; the observation if it ever held, else None."""
    from harness.errors import NotReadyError

    try:
        return str(wait_for(probe, seconds, "observation", interval=0.1))  # type: ignore[arg-type]
    except NotReadyError:
        return None
