"""Chaos under load: recorded client histories judged by the consistency checkers.

The contract asserted is Redis Cluster's, not an ideal one (Redis Cluster
specification, "Write safety"): the cluster MUST NOT lose a write acknowledged outside
any fault window; losses inside a window (asynchronous replication, a cut-off master
acknowledging writes nobody will keep) are allowed, measured and reported; a fault-free
run and a manual (coordinated) ``CLUSTER FAILOVER`` MUST lose nothing at all.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from harness import Cluster, nemesis
from harness.backends import Node
from harness.checkers import CounterChecker, FailoverChecker, RegisterChecker, SetChecker
from harness.nemesis import Step
from harness.plugin import Metrics, WorkloadFactory
from harness.scenario import Scenario, steps
from harness.wait import wait_for

from ._consistency import election_retry_ms, slots_of, standard_checkers, watch_failover

pytestmark = pytest.mark.destructive("kills, pauses, restarts and fails over nodes under load")

NT_FAST = 1000  # node timeout for the fault suites: failovers in about a second


@pytest.mark.shares_cluster  # no fault: the three kinds take turns on one cluster
@pytest.mark.parametrize("kind", ["set", "register", "counter"])
def test_fault_free_run_loses_nothing(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory, kind: str
) -> None:
    """Without faults a cluster MUST lose no acknowledged write, serve no stale read and
    keep every counter within its bounds."""
    judge = {
        "set": SetChecker(grace_ms=0, allow_in_window=False),
        "register": RegisterChecker(),
        "counter": CounterChecker(),
    }[kind]
    scenario = Scenario(
        dict(kind=kind, clients=4, rate=800), lambda c: None, [judge], warmup_ops=2000, settle_ops=0
    )
    outcome = scenario.run(cluster, workload, artifacts)
    outcome.record(metrics)
    outcome.assert_valid()


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_kill_master_under_load(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    workload: WorkloadFactory,
) -> None:
    """A killed master's replica MUST take over its slots (specification, "Replica
    election and promotion") and writes to them MUST resume; nothing acknowledged
    outside the fault window may be lost."""
    master = rng.choice(cluster.initial_masters)
    replica = cluster.replicas_of(master)[0]
    slots = slots_of(cluster, master)

    def faults(c: Cluster) -> None:
        c.faults.kill(master)
        watch_failover(c, master, replica, min(slots))
        c.faults.start(master)
        wait_for(
            lambda: c.probe_replica_of(master, replica),
            c.recovery_s(),
            f"{master.addr} back as replica",
        )

    judges = [*standard_checkers(cluster), FailoverChecker(slots, "kill", master.addr)]
    outcome = Scenario(dict(kind="set", clients=4, rate=600), faults, judges).run(
        cluster, workload, artifacts
    )
    outcome.record(metrics)
    outcome.assert_valid()


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_pause_master_past_node_timeout(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """A master paused past the node timeout is replaced and MUST come back as a replica
    when resumed; whatever it acknowledged after being replaced is lost and counted
    (inside the window), nothing else."""
    master = cluster.initial_masters[1]
    replica = cluster.replicas_of(master)[0]
    slot = cluster.first_slot(master)

    def faults(c: Cluster) -> None:
        with c.faults.paused(master):
            watch_failover(c, master, replica, slot)
        wait_for(
            lambda: c.probe_replica_of(master, replica),
            c.recovery_s(),
            f"{master.addr} demoted on resume",
        )

    outcome = Scenario(
        dict(kind="set", clients=4, rate=600), faults, standard_checkers(cluster)
    ).run(cluster, workload, artifacts)
    outcome.record(metrics)
    outcome.assert_valid()


@pytest.mark.cluster(masters=5, replicas=1, node_timeout_ms=NT_FAST)
def test_kill_two_masters_at_once(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    workload: WorkloadFactory,
) -> None:
    """Two masters killed together: both replicas MUST be elected (the remaining
    majority of masters votes for each) and nothing outside the window is lost. Their
    elections may split the votes of one epoch, so each is given the failover bound
    plus one election retry (specification, "Replica election and promotion": a
    replica that did not win tries again after twice the vote timeout)."""
    victims = rng.sample(cluster.initial_masters, 2)
    heirs = [cluster.replicas_of(m)[0] for m in victims]
    first = [cluster.first_slot(m) for m in victims]

    def faults(c: Cluster) -> None:
        for m in victims:
            c.faults.kill(m)
        bound_ms = c.spec.failover_bound_ms() + election_retry_ms(c)
        for m, r, slot in zip(victims, heirs, first, strict=True):
            watch_failover(c, m, r, slot, bound_ms)
        for m in victims:
            c.faults.start(m)
        c.wait_ready()

    outcome = Scenario(
        dict(kind="set", clients=4, rate=600, keys=40), faults, standard_checkers(cluster)
    ).run(cluster, workload, artifacts)
    outcome.record(metrics)
    outcome.assert_valid()


@pytest.mark.cluster(node_timeout_ms=NT_FAST)
def test_failover_loop(
    cluster: Cluster,
    metrics: Metrics,
    artifacts: Path,
    rng: random.Random,
    harness_seed: int,
    workload: WorkloadFactory,
) -> None:
    """Ten kills in a row (a seeded nemesis schedule, executed and stored), each of
    whichever master of the moment has a replica: every promotion MUST get a strictly
    higher config epoch (specification, "Configuration handling, propagation, and
    failovers"), and nothing is lost outside the windows."""
    schedule = nemesis.schedule(
        harness_seed, 10, faults=("kill",), interval_s=(0.2, 0.5), hold_s=(0.1, 0.3)
    )
    epochs: list[int] = []

    def promoted(step: Step, master: Node) -> None:
        # The master is dead: its replicas and slots as a live peer still sees them.
        replicas = cluster.replicas_of(master)
        assert replicas, f"{master.addr} had no replica:\n{cluster.snapshot().describe()}"
        entry = cluster.view(cluster.live_nodes()[0], with_shards=False).by_id()[
            master.node_id or ""
        ]
        watch_failover(cluster, master, replicas[0], entry.slots[0][0])
        me = cluster.view(replicas[0], with_shards=False).myself
        assert me is not None
        epochs.append(me.config_epoch)

    scenario = Scenario(
        dict(kind="set", clients=4, rate=500),
        steps(schedule, rng, hold=promoted),
        standard_checkers(cluster),
        warmup_ops=0,
        settle_ops=0,
        schedule=schedule,
        seed=harness_seed,
    )
    outcome = scenario.run(cluster, workload, artifacts)
    metrics.record("kills", len(schedule))
    assert len(epochs) == len(schedule), f"{len(epochs)} promotions for {len(schedule)} kills"
    assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs), (
        f"epochs not increasing: {epochs}"
    )
    outcome.record(metrics)
    outcome.assert_valid()


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
    (``appendfsync always``, persistence documentation) it MUST lose nothing
    acknowledged; without persistence everything it held is lost: a known-dangerous
    configuration the harness must *detect*."""
    cluster = cluster_factory(masters=3, replicas=0, persistence=persistence)  # type: ignore[operator]
    master = cluster.initial_masters[0]

    def faults(c: Cluster) -> None:
        c.faults.crash_restart(master)
        c.wait_ready()

    judges = standard_checkers(cluster, grace=False, allow_in_window=False)
    outcome = Scenario(dict(kind="set", clients=4, rate=600), faults, judges, warmup_ops=800).run(
        cluster, workload, artifacts
    )
    outcome.record(metrics)
    lost = outcome["set"].detail.lost_count
    if loses:
        assert lost > 0, "a crash without persistence must lose the master's data"
    else:
        assert lost == 0, outcome.describe()


@pytest.mark.requires("manual_failover")
def test_manual_failover_under_load_loses_nothing(
    cluster: Cluster, metrics: Metrics, artifacts: Path, workload: WorkloadFactory
) -> None:
    """A manual ``CLUSTER FAILOVER`` (no option) waits for the replica to catch up with
    the master's replication offset before switching, so it MUST lose no acknowledged
    write (``CLUSTER FAILOVER`` command documentation)."""
    master = cluster.initial_masters[2]
    replica = cluster.replicas_of(master)[0]

    def faults(c: Cluster) -> None:
        t0 = time.monotonic()
        c.record("manual-failover", replica.addr)
        assert replica.call("CLUSTER", "FAILOVER") == "OK"
        wait_for(
            lambda: c.probe_replica_of(master, replica), c.recovery_s(), f"{master.addr} demoted"
        )
        metrics.record("manual_failover_ms", (time.monotonic() - t0) * 1000)

    judges = standard_checkers(cluster, grace=False, allow_in_window=False)
    outcome = Scenario(dict(kind="set", clients=4, rate=600), faults, judges, settle_ops=500).run(
        cluster, workload, artifacts
    )
    outcome.record(metrics)
    assert outcome["set"].detail.lost_count == 0, (
        "a manual failover must lose nothing:\n" + outcome.describe()
    )
    outcome.assert_valid()
