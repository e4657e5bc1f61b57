"""Chaos through Toxiproxy: faults on the links between clients and nodes. Every node
announces its proxies, so every address the cluster hands out (topology replies and
``MOVED``) must be the announced one, and clients following it stay behind the proxies.
Then slow, cut and reset links: what a client sees, and that the cluster does not
mistake a client-side fault for a failed node.

Source: Redis Cluster specification, "Redirection and resharding" ("MOVED Redirection",
"Client connections and redirection handling") and "Fault Tolerance" / "Failure
detection"; the ``CLUSTER NODES``, ``CLUSTER SLOTS`` and ``CLUSTER SHARDS`` pages; the
``cluster-announce-ip`` / ``cluster-announce-port`` settings (redis.conf, "Cluster support
behind NAT"). Tests on client behaviour say so: they check that the harness's faults take
effect and go away, which the other chaos suites rely on.
"""

from __future__ import annotations

import time

import pytest
import redis

from harness import Cluster, key_for_slot
from harness.testing import Metrics, expect_error, never, wait_for

pytestmark = [
    pytest.mark.cluster(masters=3, replicas=1, proxied=True),
    pytest.mark.requires("runtime_announce"),
    pytest.mark.destructive(
        "puts proxies in front of the nodes and reconfigures what they announce"
    ),
]


def _write(client: redis.cluster.RedisCluster, key: str) -> tuple[bool, str]:
    try:
        client.set(key, "v")
        return True, "ok"
    except redis.exceptions.RedisError as exc:
        return False, f"{type(exc).__name__}: {exc}"


def test_clients_see_only_proxy_addresses(cluster: Cluster) -> None:
    """MUST: a node configured with ``cluster-announce-ip``/``-port`` is named by that
    address everywhere the cluster tells clients where to go: in ``CLUSTER NODES``,
    ``CLUSTER SHARDS``, ``CLUSTER SLOTS`` and in ``-MOVED`` replies (which name "the
    endpoint:port of the instance that can serve the query"), never by its own address.

    Redis Cluster specification, "MOVED Redirection" and "Client connections and
    redirection handling" (``CLUSTER SLOTS``); the ``CLUSTER NODES``, ``CLUSTER SHARDS``
    and ``CLUSTER SLOTS`` pages; redis.conf, "Cluster support behind NAT".
    """
    announced = {n.public_addr for n in cluster.nodes}
    for n in cluster.nodes:
        view = cluster.view(n)
        assert {e.addr for e in view.nodes} == announced
        for shard in view.shards or ():
            assert {f"{sn.endpoint}:{sn.port}" for sn in shard.nodes} <= announced
    slots = cluster.client().execute_command("CLUSTER SLOTS")
    assert slots, "CLUSTER SLOTS is empty"
    for n in cluster.nodes:
        reply = n.call("CLUSTER", "SLOTS")
        listed = {f"{e[0]}:{e[1]}" for r in reply for e in r[2:]}  # type: ignore[attr-defined]
        assert listed <= announced, f"{n.addr} CLUSTER SLOTS names {listed - announced}"
    slot = cluster.first_slot(cluster.initial_masters[0])
    owner = cluster.initial_masters[0]
    wrong = cluster.initial_masters[1]
    got = expect_error(wrong, "SET", key_for_slot(slot, prefix="proxied:"), "v")
    assert got == f"MOVED {slot} {owner.public_addr}", f"{wrong.addr} redirecting slot {slot}"


def test_latency_makes_clients_time_out_then_recover(cluster: Cluster, metrics: Metrics) -> None:
    """Client behaviour, no server rule: behind 400 ms of latency each way a client with a
    0.2 s socket timeout MUST time out (not hang, not succeed), and MUST write again once
    the latency is removed."""
    master = cluster.initial_masters[0]
    key = key_for_slot(cluster.first_slot(master), prefix="slow:")
    client = cluster.client(socket_timeout=0.2, socket_connect_timeout=0.5)
    assert _write(client, key)[0]
    with cluster.faults.latency(master, ms=400):
        t0 = time.monotonic()
        ok, seen = _write(client, key)
        assert not ok and "Timeout" in seen, f"a 0.2 s client must time out behind 2x400 ms: {seen}"
        assert time.monotonic() - t0 >= 0.2
    wait_for(lambda: _write(client, key), cluster.recovery_s(), "writes again")
    metrics.record("latency_ms", 400)


def test_cut_clients_fails_one_shard_only_then_recovers(cluster: Cluster) -> None:
    """MUST: shards are independent: when clients cannot reach one master, writes to its
    slots fail while the other masters keep serving theirs (nodes do not proxy, each
    serves its own slots), and writes to the cut shard resume when the path is restored.

    Redis Cluster specification, "Client and Server roles in the Redis cluster protocol"
    and "Performance" (nodes redirect rather than proxy; clients talk to the node serving
    the slot).
    """
    master, other = cluster.initial_masters[0], cluster.initial_masters[1]
    key = key_for_slot(cluster.first_slot(master), prefix="cut:")
    other_key = key_for_slot(cluster.first_slot(other), prefix="cut:")
    client = cluster.client(socket_timeout=1.0, socket_connect_timeout=0.5)
    assert _write(client, key)[0]
    with cluster.faults.cut_clients(master):
        ok, seen = _write(client, key)
        assert not ok, f"a cut client path must fail, got {seen}"
        assert _write(client, other_key)[0], "other shards must keep serving"
    wait_for(lambda: _write(client, key), cluster.recovery_s(), "writes to the cut shard again")


def test_reset_connections_are_survived_by_reconnecting(cluster: Cluster) -> None:
    """Client behaviour, no server rule: while a proxy resets every connection a write
    through it MUST fail, and the client MUST write again (reconnecting) once the resets
    stop."""
    master = cluster.initial_masters[2]
    key = key_for_slot(cluster.first_slot(master), prefix="reset:")
    client = cluster.client(socket_timeout=1.0)
    with cluster.faults.reset_connections(master):
        ok, seen = _write(client, key)
        assert not ok, f"a write through a resetting proxy cannot succeed: {seen}"
    wait_for(lambda: _write(client, key), cluster.recovery_s(), "writes after the resets stop")


def test_proxy_only_cut_does_not_trigger_failover(cluster: Cluster, metrics: Metrics) -> None:
    """MUST NOT, and documents a limit of proxy faults: cutting a master's own proxies
    (client and bus) is not a partition. It still pings its peers through *their*
    proxies, which counts as hearing from it, so no node flags it failed for as long as a
    failover could take (``failover_bound_ms``), and it keeps its role. Use partitions
    (``requires("network_faults")``) to make a node fail.

    Redis Cluster specification, "Fault Tolerance" / "Failure detection" (PFAIL needs a
    ping pending for longer than the node timeout; FAIL needs a majority of masters).
    """
    master = cluster.initial_masters[0]
    observe_s = cluster.spec.failover_bound_ms() / 1000
    with cluster.faults.cut_clients(master, bus=True):
        never(
            lambda: cluster.probe_flagged_failed(master),
            observe_s,
            f"a proxy-only cut making every node flag {master.addr} failed",
            interval=0.1,
        )
    metrics.record("observed_ms", observe_s * 1000)
    cluster.wait_ready()
    assert master in cluster.masters()
