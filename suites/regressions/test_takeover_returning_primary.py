"""Regression: an old primary that comes back after ``CLUSTER FAILOVER TAKEOVER`` can win
a config-epoch collision against the replica that took its slots, take them back, and
make that new primary resync from it: every write the new primary acknowledged is lost.

Report: valkey-io/valkey#974 (open pull request, Binbin, 2024-08-31), from the failing
``tests/unit/cluster/manual-takeover.tcl`` of valkey-io/valkey#969 ("Old masters not
converted into slaves"). The PR's account: "It happens when the old primary and the new
primary have the same config epoch, and the old primary has a smaller node id and win the
collision"; its log shows the resumed old primary's ``configEpoch collision ... set to 8``,
``... set to 9``, then ``has old slots configuration, sending an UPDATE`` to the new
primary. Affected: every version with this collision rule (the same code in Redis
6.2.14, 7.0.15 and unstable of 2024-10, Valkey 8.0 and unstable of 2024-10; the PR is not
merged). Valkey 8.1.0 ships a side change of the PR as #1813 ("broadcast epoch ASAP when
configEpoch changed"), which narrows the window but does not close it.

The recipe (manual-takeover.tcl): 5 primaries x 1 replica; pause (SIGSTOP) 3 of them, a
majority, so no automatic failover can happen (the replicas' ``cluster-replica-no-failover``
is on while the pauses are applied); wait until every other node reports
``cluster_state:fail``; ``CLUSTER FAILOVER TAKEOVER`` on the 3 replicas; wait for
``cluster_state:ok`` everywhere; resume the old primaries; they must become replicas.
Here a set workload runs throughout, so a lost write is measured, not inferred.

Verified in the sources (valkey 8.0 ``src/cluster_legacy.c``; Redis 6.2/7.0
``src/cluster.c`` identical in substance):
- TAKEOVER calls ``clusterBumpConfigEpochWithoutConsensus``: ``currentEpoch + 1`` as
  this node knows it, no vote; three replicas doing it at once get the same epoch. A
  replica whose own epoch is already the greatest it knows keeps it (no bump): the
  harness, like ``redis-cli --cluster create``, gives every node, replicas too, a distinct
  epoch at formation, so one heir may take over with an epoch *older* than its primary's
  unseen bump.
- ``clusterHandleConfigEpochCollision``: two primaries with equal ``configEpoch``: the
  one with the *smaller* node id takes ``++currentEpoch``, whatever shard either is in.
  A resumed old primary that collides with any primary before it reads its replica's
  claim jumps past that replica's epoch, then keeps its slots (``clusterProcessPacket``
  sends an ``UPDATE`` to the claimant with the older epoch, which turns it into a
  replica of the old primary: a full resync).
- Change to the recipe, from the PR's own test: ``CLUSTER BUMPEPOCH`` on each primary
  just before its pause ("Bumping the epochs to increase the chance of conflicts"). The
  harness forms clusters with distinct epochs (1..10), so without it an old primary's
  epoch is older than any the replicas can take and it never collides; with it the old
  primaries hold an epoch nobody else has heard of, which the replicas then take too.
  Bump and SIGSTOP are one fault step (nothing in between), as in the tcl test.

Observable: acknowledged writes lost among those sent after the takeover (before it a
TAKEOVER may lose the replication tail: counted apart, not the bug), and who owns each
shard's slots at the end (an old primary owning them again is the same bug).
"""

from __future__ import annotations

import pytest

from harness import Cluster, wait_for
from harness.backends import Node
from harness.checkers.sets import check_set
from harness.checkers.windows import final_reads, is_collection
from harness.errors import NotReadyError
from harness.faults.process import PAUSE
from harness.history import History
from harness.plugin import WorkloadFactory
from harness.regressions import Bug, Regression

BUG = Bug(
    name="takeover-returning-primary",
    reference="valkey-io/valkey#974",
    title="an old primary back after TAKEOVER can win the epoch collision and take its slots back",
    affected="Redis 3.0+ and Valkey 7.2-8.1 (collision rule unchanged; PR #974 open)",
    fixed="",
    observable="acknowledged writes lost after the takeover; old primary owning its slots again",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.destructive("pauses 3 of 5 masters and takes their slots over"),
]

PAUSED = 3  # a majority of the 5 primaries: no automatic failover is possible
LOG = (
    r"configEpoch collision|Reconfiguring myself as a replica|old slots configuration"
    r"|Taking over the (master|primary)|New configEpoch set|after successful failover"
)


@pytest.mark.cluster(masters=5, replicas=1, node_timeout_ms=1500)
def test_takeover_returning_primary(
    cluster: Cluster, regression: Regression, workload: WorkloadFactory
) -> None:
    """manual-takeover.tcl under a set workload, with the PR's epoch bump before each
    pause: the old primaries, resumed, MUST become replicas of the replicas that took
    over (``clusterUpdateSlotsConfigWith``), and no write acknowledged after the
    takeover may be lost."""
    old = regression.rng.sample(cluster.initial_masters, PAUSED)
    heirs = [cluster.replicas_of(m)[0] for m in old]
    rest = [n for n in cluster.nodes if n not in old]
    first = [cluster.first_slot(m) for m in old]
    bound = cluster.recovery_s()
    wl = workload(cluster, kind="set", clients=4, rate=200, keys=40, seed=regression.seed)
    with wl.running():
        wl.wait_ops(300)
        with regression.setup(f"pause {PAUSED} masters until cluster_state:fail, take over"):
            for n in old:  # Redis logs the collision at verbose level only
                n.call("CONFIG", "SET", "loglevel", "verbose")
            for r in heirs:
                r.call("CONFIG", "SET", "cluster-replica-no-failover", "yes")
            for m in old:
                regression.evidence(f"{m.addr} {_bump_and_pause(cluster, m)}, then paused")
            for r in heirs:
                r.call("CONFIG", "SET", "cluster-replica-no-failover", "no")
            wait_for(lambda: _states(cluster, rest, "fail"), bound, "cluster_state:fail")
            t_takeover = cluster.record("takeover", ",".join(r.addr for r in heirs)).t_ns
            for r in heirs:
                assert r.call("CLUSTER", "FAILOVER", "TAKEOVER") == "OK"
            wait_for(lambda: _states(cluster, rest, "ok"), bound, "cluster_state:ok")
            regression.evidence(f"after the takeover: epochs {_epochs(cluster, heirs)}")
        wl.wait_ops(300)
        for m in old:
            cluster.faults.resume(m)
        try:
            wait_for(lambda: _settled(cluster, old, heirs), bound, "one primary per shard")
        except NotReadyError as exc:
            regression.inconclusive(f"the shards did not settle after the resume: {exc}")
            return
        wl.wait_ops(300)
    history = wl.final_read()
    owners = [cluster.owner_of_slot(s) for s in first]
    took_back = [m.addr for m, o in zip(old, owners, strict=True) if o is m]
    for m, r, o in zip(old, heirs, owners, strict=True):
        regression.evidence(
            f"shard of {_who(m)}, taken over by {_who(r)}: owned by {o.name} at the end"
        )
    for line in _distinct(regression.log_lines(cluster, LOG))[:25]:
        regression.evidence(line)
    after, before = _lost_split(history, t_takeover)
    verdict = check_set(history)
    facts = {
        "lost": len(after),
        "lost_before_takeover": len(before),
        "took_back": took_back,
        "acknowledged": verdict.acknowledged,
        "unexpected": verdict.unexpected_count,
    }
    if after or took_back:
        example = ", ".join(after[:3])
        regression.reproduced(
            f"{len(after)} writes acknowledged after the takeover lost (e.g. {example}); "
            f"old primaries owning their slots again: {took_back or 'none'}",
            **facts,
        )
    else:
        regression.not_reproduced(
            f"every old primary became a replica; all {verdict.acknowledged} acknowledged "
            f"writes but {len(before)} (replication tail before the takeover) read back",
            **facts,
        )


def _bump_and_pause(cluster: Cluster, node: Node) -> str:
    """``CLUSTER BUMPEPOCH`` then SIGSTOP, as one fault step (one timeline event): the
    new epoch must not reach any peer before the pause."""
    reply: list[object] = []

    def apply() -> None:
        reply.append(node.call("CLUSTER", "BUMPEPOCH"))
        node.pause()

    cluster.faults.inject(PAUSE, node.addr, apply, "after CLUSTER BUMPEPOCH")
    return str(reply[0])


def _who(n: Node) -> str:
    return f"{n.name} {n.addr} ({(n.node_id or '?')[:8]})"


def _distinct(lines: list[str]) -> list[str]:
    """Log lines without repeats of the same message (the UPDATE line comes in bursts)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        name, _, rest = line.partition(": ")
        body = name + rest.split(" ", 5)[-1]  # without pid, date and time
        if body not in seen:
            seen.add(body)
            out.append(line)
    return out


def _states(cluster: Cluster, nodes: list[Node], want: str) -> tuple[bool, dict[str, str]]:
    seen = {
        v.observer: v.info.get("cluster_state", "?")
        for v in cluster.snapshot(nodes, with_shards=False).views
    }
    return len(seen) == len(nodes) and all(s == want for s in seen.values()), seen


def _epochs(cluster: Cluster, nodes: list[Node]) -> dict[str, int]:
    out = {}
    for n in nodes:
        me = cluster.view(n, with_shards=False).myself
        out[n.addr] = me.config_epoch if me else -1
    return out


def _settled(cluster: Cluster, old: list[Node], heirs: list[Node]) -> tuple[bool, str]:
    """Every live node agrees on a covered map, and in each paused shard one of the two
    nodes is a synced replica of the other (whichever won)."""
    ok, problems = cluster.probe_healthy()
    if not ok:
        return False, problems
    pending = [
        f"{m.addr}/{r.addr}"
        for m, r in zip(old, heirs, strict=True)
        if not (cluster.probe_replica_of(m, r)[0] or cluster.probe_replica_of(r, m)[0])
    ]
    return not pending, f"shards without one synced replica: {pending}"


def _lost_split(history: History, t_ns: int) -> tuple[list[str], list[str]]:
    """Acknowledged adds missing from the final read, sent after / before ``t_ns``."""
    finals = {k: set(o.value or ()) for k, o in final_reads(history.ops, is_collection).items()}
    after: list[str] = []
    before: list[str] = []
    for o in history.ops:
        lost = o.kind == "add" and o.outcome == "ok" and o.value not in finals.get(o.key, {o.value})
        if lost:
            (after if o.invoke_ns >= t_ns else before).append(f"{o.key}:{o.value}@{o.node}")
    return after, before
