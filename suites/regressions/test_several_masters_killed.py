"""Regression: several primaries lost at once can leave a shard down for far longer than
one failover takes, because their replicas' elections collide.

Reports: valkey-io/valkey#1018 ("Do election in order based on failed primary rank to
avoid voting conflicts", merged, Valkey 8.1.0: "When multiple primary nodes fail
simultaneously, the cluster can not recover within the default effective time ... too many
epoch conflicts"), its companion valkey-io/valkey#1009 ("Fix replica not able to initiate
election in time when epoch fails", 8.1.0), and valkey-io/valkey#1640 (open): the test
#1009 added, "Primaries will not time out then they are elected in the same epoch"
(failover2.tcl: 3 primaries paused at once, no replica may log ``Failover attempt
expired``), still fails now and then on 8.1: replicas can still start in one epoch.
Affected: Redis (every version: ``clusterHandleSlaveFailover`` unchanged) and Valkey up
to 8.0; 8.1 narrows it. Redis has no counterpart of either fix.

Verified in the sources (Redis 6.2.14/7.0.15 ``src/cluster.c``
``clusterHandleSlaveFailover``, Valkey 8.0 ``cluster_legacy.c``
``clusterHandleReplicaFailover``; the 8.1 change from the #1018/#1009 commits): a
replica starts its election 500 ms + random(0..500) ms after its primary is FAIL, with
``++currentEpoch`` as it knows it; a primary grants one vote per epoch
(``lastVoteEpoch``). Two replicas asking in the same epoch split the votes, and the loser
waits for its attempt to expire (``auth_timeout`` = max(2 x node timeout, 2 s)) and
then retries only after ``auth_retry_time`` = 2 x auth_timeout: with a 2 s node timeout,
8 s after its first try. 8.1 adds 500 ms x the rank of the replica's failed primary among
all failed primaries (log: ``Start of election delayed ... primary rank #N``), and resets an
election once another node claims an equal or higher epoch (log: ``Resetting the
election``): both strings are in the 8.1.8 binary here, neither in 8.0.1 nor Redis.

The recipe: 5 primaries x 1 replica, node timeout 2 s; SIGKILL two primaries back to back;
measure from the first kill until every live node reports ``cluster_state:ok`` with
neither dead primary owning a slot in its view. Bound: 3 x node timeout (FAIL takes 1 to
1.5 x, the election under 1.5 s, plus 8.1's 500 ms rank delay). Past the bound with the
collision's signature (two elections for one epoch, an expired attempt, or a replica
trying again) is reproduced; past it without (8.1's deliberate rank delay on a loaded
machine: seen once here, 6139 ms with two clean elections) is not; the measured time
is a fact either way. The replicas' election log lines are the evidence.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import Cluster, wait_for
from harness.backends import Node
from harness.errors import NotReadyError
from harness.regressions import Bug, Regression

BUG = Bug(
    name="several-masters-killed",
    reference="valkey-io/valkey#1018, valkey-io/valkey#1640",
    title="replicas of primaries lost together split the votes and a shard stays down",
    affected="Redis (all versions); Valkey up to 8.0; 8.1 still now and then (#1640 open)",
    fixed="Valkey 8.1.0 (#1018, #1009) mitigates",
    observable="a shard down past 3 x node-timeout after two primaries are killed, "
    "with split votes (same epoch, an expired or repeated election)",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.destructive("kills two masters at once"),
]

NT_MS = 2000
KILLED = 2
ELECTION = re.compile(
    r"(\d\d):(\d\d):(\d\d\.\d+) [*#] Starting a failover election for epoch (\d+)"
)
LOG = (
    r"Start of election delayed|Starting a failover election|Failover election won"
    r"|Failover attempt expired|[Rr]esetting the election|Failed primary rank"
    r"|Failover auth (granted|denied)"
)


@pytest.mark.cluster(masters=5, replicas=1, node_timeout_ms=NT_MS)
def test_several_masters_killed(cluster: Cluster, regression: Regression) -> None:
    """Two primaries killed together: both replicas MUST be elected, and every live node
    back at ``cluster_state:ok``, within 3 x node timeout of the kill."""
    victims = regression.rng.sample(cluster.initial_masters, KILLED)
    heirs = [cluster.replicas_of(m)[0] for m in victims]
    dead = {m.node_id for m in victims}
    bound_ms = 3 * NT_MS
    # past the bound, keep watching: two election retries more (2 x auth_timeout + 1 s)
    limit_s = bound_ms / 1000 + 2 * (4 * max(NT_MS, 1000) + 1000) / 1000
    with regression.setup(f"kill {KILLED} masters at once"):
        t0 = cluster.faults.kill(victims[0]).t_ns
        for m in victims[1:]:
            cluster.faults.kill(m)
    try:
        wait_for(lambda: _healed(cluster, dead), limit_s, "cluster_state:ok, slots moved")
        ok_after_ms: float | None = (time.monotonic_ns() - t0) / 1e6
    except NotReadyError as exc:
        ok_after_ms = None
        regression.evidence(str(exc))
    lines = regression.log_lines(cluster, LOG)
    starts = [_elections(lines, h) for h in heirs]
    epochs = [e for s in starts for _, e in s]
    firsts = [s[0][0] for s in starts if s]
    gap_ms = round(max(firsts) - min(firsts)) if len(firsts) == KILLED else None
    for m, r in zip(victims, heirs, strict=True):
        regression.evidence(f"killed {_who(m)}; its replica {_who(r)}")
    for line in lines[:30]:
        regression.evidence(line)
    facts = {
        "ok_after_ms": None if ok_after_ms is None else round(ok_after_ms),
        "bound_ms": bound_ms,
        "elections": len(epochs),
        "same_epoch": len(epochs) != len(set(epochs)),
        "first_elections_gap_ms": gap_ms,
        "expired": sum("Failover attempt expired" in line for line in lines),
    }
    # the bug's signature: votes split over one epoch, an election that expired, or a
    # replica that had to try again. Slow without it is not this bug: Valkey 8.1 delays
    # the second replica on purpose (its fix, by failed-primary rank), which alone can
    # pass the bound on a loaded machine (seen: 6139 ms, two clean elections)
    split = facts["same_epoch"] or facts["expired"] or len(epochs) > KILLED
    if ok_after_ms is None or (ok_after_ms > bound_ms and split):
        shown = f"{ok_after_ms:.0f} ms" if ok_after_ms else f"not within {limit_s:.0f} s"
        regression.reproduced(
            f"a shard down past 3 x node-timeout ({bound_ms} ms): ok after {shown}; "
            f"elections for epochs {epochs}",
            **facts,
        )
    elif ok_after_ms > bound_ms:
        regression.not_reproduced(
            f"ok {ok_after_ms:.0f} ms after the kill, past {bound_ms} ms but with no split "
            f"vote: one election per shard, epochs {epochs}, none expired",
            **facts,
        )
    else:
        regression.not_reproduced(
            f"every live node ok {ok_after_ms:.0f} ms after the kill, within {bound_ms} ms; "
            f"elections for epochs {epochs}",
            **facts,
        )


def _healed(cluster: Cluster, dead: set[str | None]) -> tuple[bool, dict[str, str]]:
    """Every live node: ``cluster_state:ok`` and no slot owned by a killed primary."""
    live = cluster.live_nodes()
    seen = {}
    for v in cluster.snapshot(live, with_shards=False).views:
        held = [e.node_id[:8] for e in v.nodes if e.node_id in dead and e.slots]
        seen[v.observer] = v.info.get("cluster_state", "?") + (f" held by {held}" if held else "")
    return len(seen) == len(live) and all(s == "ok" for s in seen.values()), seen


def _elections(lines: list[str], node: Node) -> list[tuple[float, int]]:
    """(ms of the day, epoch) of each election ``node`` started, from its log."""
    out = []
    for line in lines:
        if line.startswith(f"{node.name}: ") and (m := ELECTION.search(line)):
            h, mi, sec, epoch = m.groups()
            out.append(((int(h) * 60 + int(mi)) * 60_000 + float(sec) * 1000, int(epoch)))
    return out


def _who(n: Node) -> str:
    return f"{n.name} {n.addr} ({(n.node_id or '?')[:8]})"
