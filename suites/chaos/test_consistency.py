"""Chaos under load: recorded client histories judged by the consistency checkers.

The contract asserted (Redis Cluster's, not an ideal one): nothing acknowledged outside a
fault window is ever lost; losses inside a window (asynchronous replication, a cut-off
master acknowledging writes nobody will keep) are measured and reported; a fault-free run
and a manual (coordinated) CLUSTER FAILOVER lose nothing at all.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from harness import Cluster, consistency, key_for_slot, nemesis
from harness.backends import Node
from harness.plugin import Metrics, WorkloadFactory
from harness.wait import wait_for

from ._consistency import check_and_record, no_loss_outside_windows

NT_FAST = 1000  # node timeout for the fault suites: failovers in about a second


def _slots_of(cluster: Cluster, master: Node) -> frozenset[int]:
    me = cluster.view(master, with_shards=False).myself
    assert me is not None
    return frozenset(s for lo, hi in me.slots for s in range(lo, hi + 1))


def _watch_failover(cluster: Cluster, master: Node, replica: Node, slot: int) -> None:
    """Record when peers flag the master failed and when the replica serves its slots."""
    bound = cluster.spec.failover_bound_ms() / 1000
    key = key_for_slot(slot, prefix="probe:")
    wait_for(
        lambda: cluster.probe_flagged_failed(master),
        bound,
        f"{master.addr} flagged failed",
        interval=0.01,
    )
    cluster.record("fail-flag", master.addr)
    wait_for(
        lambda: cluster.probe_write(replica, key), bound, f"{replica.addr} promoted", interval=0.01
    )
    cluster.record("promoted", replica.addr)


@pytest.mark.parametrize("kind", ["set", "register", "counter"])
def test_fault_free_run_loses_nothing(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory, kind: str
) -> None:
    wl = workload(cluster, kind=kind, clients=4, rate=800)
    with wl.running():
        wl.wait_ops(2000)
    history = wl.final_read()
    history.write_jsonl(artifacts / "history.jsonl")
    if kind == "set":
        result = check_and_record(cluster, history, metrics, artifacts)
        assert result.ok and result.lost_count == 0, result.describe()
    elif kind == "register":
        reg = consistency.check_register(history)
        metrics.record("stale_reads", reg.stale_count)
        assert reg.ok, reg.describe()
    else:
        counter = consistency.check_counter(history)
        metrics.record("counter_violations", len(counter.violations))
        assert counter.ok, counter.describe()


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_kill_master_under_load(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    workload: WorkloadFactory,
) -> None:
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    slots = _slots_of(cluster, master)
    wl = workload(cluster, kind="set", clients=4, rate=600)
    with wl.running():
        wl.wait_ops(500)
        kill = cluster.faults.kill(master)
        _watch_failover(cluster, master, replica, min(slots))
        wl.wait_ops(300)
        cluster.faults.start(master)
        wait_for(
            lambda: cluster.probe_replica_of(master, replica), 30, f"{master.addr} back as replica"
        )
        wl.wait_ops(300)
    history = wl.final_read()
    result = check_and_record(cluster, history, metrics, artifacts)
    phases = consistency.failover_phases(history, history.events, kill.t_ns, slots)
    for name, value in phases.as_metrics().items():
        metrics.record(name, value)
    metrics.record("failover_ms", phases.first_ok_ms or -1)
    no_loss_outside_windows(result)
    assert phases.first_ok_ms is not None, "writes to the killed master's slots never resumed"


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_pause_master_past_node_timeout(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """The paused master must come back as a replica; whatever it acknowledged after
    being replaced is lost and counted (inside the window), nothing else."""
    master = cluster.initial_masters[1]
    replica = cluster.replicas_of(master)[0]
    wl = workload(cluster, kind="set", clients=4, rate=600)
    slot = cluster.first_slot(master)
    with wl.running():
        wl.wait_ops(500)
        with cluster.faults.paused(master):
            _watch_failover(cluster, master, replica, slot)
        wait_for(
            lambda: cluster.probe_replica_of(master, replica),
            30,
            f"{master.addr} demoted on resume",
        )
        wl.wait_ops(300)
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts)
    no_loss_outside_windows(result)


@pytest.mark.cluster(masters=5, replicas=1, node_timeout_ms=NT_FAST)
def test_kill_two_masters_at_once(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    workload: WorkloadFactory,
) -> None:
    victims = rng.sample(cluster.initial_masters, 2)
    heirs = [cluster.replicas_of(m)[0] for m in victims]
    slots = [cluster.first_slot(m) for m in victims]
    wl = workload(cluster, kind="set", clients=4, rate=600, keys=40)
    with wl.running():
        wl.wait_ops(500)
        for m in victims:
            cluster.faults.kill(m)
        for m, r, slot in zip(victims, heirs, slots, strict=True):
            _watch_failover(cluster, m, r, slot)
        for m in victims:
            cluster.faults.start(m)
        cluster.wait_ready(30)
        wl.wait_ops(300)
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts)
    no_loss_outside_windows(result)


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_failover_loop(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    harness_seed: int,
    workload: WorkloadFactory,
) -> None:
    """Ten kills in a row, each of whichever node is master of the moment: every
    promotion gets a strictly higher config epoch, nothing is lost outside the windows."""
    steps = nemesis.schedule(
        harness_seed, 10, faults=("kill",), interval_s=(0.2, 0.5), hold_s=(0.1, 0.3)
    )
    nemesis.save(steps, artifacts / "schedule.json", harness_seed)
    epochs = []
    wl = workload(cluster, kind="set", clients=4, rate=500)
    with wl.running():
        for step in steps:
            covered = [m for m in cluster.masters() if cluster.replicas_of(m)]
            assert covered, f"no master has a replica left:\n{cluster.snapshot().describe()}"
            master = rng.choice(covered)
            replica = cluster.replicas_of(master)[0]
            slot = cluster.first_slot(master)
            cluster.record("nemesis", master.addr, step.describe())
            cluster.faults.kill(master)
            _watch_failover(cluster, master, replica, slot)
            me = cluster.view(replica, with_shards=False).myself
            assert me is not None
            epochs.append(me.config_epoch)
            cluster.faults.start(master)
            cluster.wait_ready(30)
    metrics.record("kills", len(steps))
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), (
        f"epochs not increasing: {epochs}"
    )
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts)
    no_loss_outside_windows(result)


@pytest.mark.parametrize(
    ("persistence", "loses"), [("aof", False), ("none", True)], ids=["aof-keeps", "none-loses"]
)
def test_crash_restart_master(
    cluster_factory: object,
    metrics: Metrics,
    artifacts: Path,
    workload: WorkloadFactory,
    persistence: str,
    loses: bool,
) -> None:
    """Without replicas the restarted master serves from its own disk. With AOF
    (appendfsync always) nothing acknowledged is lost; without persistence everything it
    held is: a known-dangerous configuration the harness must *detect*."""
    cluster = cluster_factory(masters=3, replicas=0, persistence=persistence)  # type: ignore[operator]
    master = cluster.initial_masters[0]
    wl = workload(cluster, kind="set", clients=4, rate=600)
    with wl.running():
        wl.wait_ops(800)
        cluster.faults.crash_restart(master)
        cluster.wait_ready(30)
        wl.wait_ops(300)
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts, grace=False)
    if loses:
        assert result.lost_count > 0, "a crash without persistence must lose the master's data"
    else:
        assert result.lost_count == 0, result.describe()


@pytest.mark.requires("manual_failover")
def test_manual_failover_under_load_loses_nothing(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    master = cluster.initial_masters[2]
    replica = cluster.replicas_of(master)[0]
    wl = workload(cluster, kind="set", clients=4, rate=600)
    with wl.running():
        wl.wait_ops(500)
        t0 = time.monotonic()
        cluster.record("manual-failover", replica.addr)
        assert replica.call("CLUSTER", "FAILOVER") == "OK"
        wait_for(lambda: cluster.probe_replica_of(master, replica), 15, f"{master.addr} demoted")
        metrics.record("manual_failover_ms", (time.monotonic() - t0) * 1000)
        wl.wait_ops(500)
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts, grace=False)
    assert result.lost_count == 0, "a manual failover must lose nothing:\n" + result.describe()


@pytest.mark.requires("network_faults")
@pytest.mark.cluster(node_timeout_ms=2000)
def test_isolated_master_under_load(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """What the cut-off master acknowledges after the split is lost after healing: the
    documented Redis Cluster behaviour, measured and classified here."""
    master = cluster.initial_masters[0]
    replica = cluster.replicas_of(master)[0]
    wl = workload(cluster, kind="set", clients=4, rate=600)
    slot = cluster.first_slot(master)
    with wl.running():
        wl.wait_ops(500)
        with cluster.faults.partitioned("isolate", node=master):
            _watch_failover(cluster, master, replica, slot)
        wait_for(lambda: cluster.probe_replica_of(master, replica), 30, f"{master.addr} rejoining")
        wl.wait_ops(300)
    result = check_and_record(cluster, wl.final_read(), metrics, artifacts)
    no_loss_outside_windows(result)
