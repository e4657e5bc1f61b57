"""Regression: a master that bumped its config epoch and died before its replica heard of
the new epoch leaves the replica unable to fail over: the other masters deny every vote.

valkey-io/valkey#2169 (fixed by valkey-io/valkey#2178, commit 476671be19, 2025-06-10,
backported to 7.2 by #2232; released in 8.0.5 and 8.1.2 per the project's notes, the
release notes themselves not read here): a replica asks for votes with ``configEpoch`` = its
master's config epoch *as it knows it* (``nodeEpoch(myself)``), and a voter refuses when
it knows a greater config epoch for any slot claimed (``clusterSendFailoverAuthIfNeeded``:
"Failover auth denied to ...: slot N epoch (E) > reqEpoch (R)"; ``reqConfigEpoch`` since
valkey-io/valkey#1341 in 8.1; logged at WARNING, so at the harness's default ``loglevel
notice``). Config epochs travel only in their owner's own packet headers (and UPDATE
messages, sent only to a *master* claiming stale slots), so a replica that missed its
master's last packets never learns the new epoch from anyone: before the fix every retry
is denied and the shard stays down until the master returns. The fix: a voter that
denies on this rule sends the replica an UPDATE about its dead master, and the next
attempt (after the auth retry time, ``2 x max(2 x node timeout, 2 s)``) wins.
valkey-io/valkey#1813 (merged 2025-03) also broadcasts a PONG when the epoch changes, which narrows
the window but cannot close it. Redis has the same vote rule and the same non-broadcasting
``CLUSTER BUMPEPOCH`` (6.2.14 and 7.0.15 ``cluster.c``, read here) and no such fix.

Recipe, as the fix's test (``tests/unit/cluster/failover2.tcl``
``test_replica_config_epoch_failover``) gives it: the replica deaf to cluster packets
(``DEBUG DROP-CLUSTER-PACKET-FILTER -2``: 8.0.1 and Redis 7.0 filter one packet type
only, 6.2 has no filter), ``CLUSTER
BUMPEPOCH`` on a master whose epoch is not the highest (else the reply is ``STILL``), wait
until the other masters know the new epoch and check that the replica does not, then the
master down. Here the replica's deafness is packet drops between it and its master in
both directions (the harness's per-pair drops, so ``network_faults``), and they stay in
place until the outcome is read: dropped segments of the killed master are otherwise
retransmitted by its kernel after healing and the replica learns the epoch after all
(seen on 8.1.8 with the drops healed at the kill). Observable: the shard still down when
a fixed server would be back, the node's failover bound plus two auth retries (3-4 x the
node timeout is too short for the fix, which needs one retry), with the voters' denial
lines as the evidence. Redis 6.2 has neither ``bind-source-addr`` nor runtime announce, so
the local backend cannot cut one pair of its links (the test is skipped there; the
docker backend's per-container rules should do, not tried here).
"""

from __future__ import annotations

import time

import pytest

from harness import Cluster, key_for_slot
from harness.backends import Node
from harness.errors import NotReadyError
from harness.regressions import Bug, Regression
from harness.wait import wait_for

BUG = Bug(
    name="failover-denied-after-epoch-bump",
    reference="valkey-io/valkey#2169",
    title="a master killed right after bumping its config epoch, before its replica heard "
    "of it: the other masters deny the replica's failover for good",
    affected="Valkey up to 8.0.4 and 8.1.1; Redis (same vote rule, no fix)",
    fixed="Valkey 8.0.5, 8.1.2 (valkey-io/valkey#2178: a denying voter sends an UPDATE)",
    observable="the shard down past the bound, the voters logging the slot-epoch denial",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.requires("network_faults"),
    pytest.mark.destructive("cuts a master from its replica and kills the master"),
]

#: the vote rule's log line, in both spellings (``reqConfigEpoch`` since Valkey 8.1)
DENIED = r"Failover auth denied to .*slot \d+ epoch \(\d+\) > req(?:Config)?Epoch \(\d+\)"


def _auth_retry_s(node_timeout_ms: int) -> float:
    """The time before a replica retries a failed election (``clusterHandleReplicaFailover``
    in every version read: twice the auth timeout, ``max(2 x node timeout, 2000 ms)``)."""
    return 2 * max(2 * node_timeout_ms, 2000) / 1000


def _epoch_seen(cluster: Cluster, observer: Node, node: Node) -> int:
    """The config epoch ``observer`` knows for ``node`` (its ``CLUSTER NODES`` row)."""
    return cluster.view(observer, with_shards=False).by_id()[node.node_id or ""].config_epoch


@pytest.mark.cluster(masters=3, replicas=1, node_timeout_ms=1000)
def test_failover_denied_after_epoch_bump(cluster: Cluster, regression: Regression) -> None:
    """A master whose config epoch the replica never heard, killed: its replica MUST
    still be elected within a bound, since a majority of masters can reach it
    (specification, "Replica election and promotion"; the vote rule on slot epochs is in
    the source, not the specification)."""
    view = cluster.view(cluster.nodes[0], with_shards=False)
    masters = sorted((e for e in view.nodes if e.is_master and e.slots), key=lambda e: e.node_id)
    top = max(e.config_epoch for e in masters)
    with regression.setup("pick a master whose config epoch is not the highest"):
        entry = regression.rng.choice([e for e in masters if e.config_epoch < top])
    master = cluster.node_by_id(entry.node_id)
    replica = cluster.replicas_of(master)[0]
    voters = [cluster.node_by_id(e.node_id) for e in masters if e is not entry]
    key = key_for_slot(cluster.first_slot(master), prefix="epoch:")
    nt_ms = cluster.spec.node_timeout_ms
    with regression.setup(f"drop packets between {master.addr} and {replica.addr}, bump"):
        cluster.faults.drop(master, replica)
        cluster.faults.drop(replica, master)
        reply = str(master.call("CLUSTER", "BUMPEPOCH"))
        assert reply.startswith("BUMPED "), f"CLUSTER BUMPEPOCH answered {reply!r}"
        epoch = int(reply.split()[1])

        def voters_know() -> tuple[bool, dict[str, int]]:
            seen = {v.addr: _epoch_seen(cluster, v, master) for v in voters}
            return all(e == epoch for e in seen.values()), seen

        wait_for(voters_know, 2 * nt_ms / 1000 + 2, f"the other masters knowing epoch {epoch}")
        stale = _epoch_seen(cluster, replica, master)
        assert stale < epoch, f"the replica learned epoch {stale} before the kill"
    regression.evidence(
        f"before the kill: {master.addr} bumped to config epoch {epoch}; the other masters "
        f"know it, its replica {replica.addr} knows {stale}"
    )
    kill = cluster.faults.kill(master)
    bound = cluster.spec.failover_bound_ms() / 1000 + 2 * _auth_retry_s(nt_ms)
    try:
        wait_for(
            lambda: cluster.probe_write(replica, key),
            bound,
            f"{replica.addr} serving the slots of {master.addr}",
        )
        took = (time.monotonic_ns() - kill.t_ns) / 1e9
    except NotReadyError:
        took = None
    denials = regression.log_lines(cluster, DENIED)
    for line in denials[:2]:
        regression.evidence(line)
    cluster.faults.heal()
    facts = {"denials": len(denials), "bound_s": round(bound, 1)}
    if took is not None:
        how = f" after {len(denials)} denials (voters told it the epoch)" if denials else ""
        regression.not_reproduced(
            f"{replica.addr} took over {took:.1f} s after the kill{how}",
            failover_s=round(took, 1),
            **facts,
        )
    elif denials:
        regression.reproduced(
            f"the shard of {master.addr} still down {bound:.0f} s after the kill: its replica "
            f"asked with epoch {stale}, the voters know {epoch} and denied {len(denials)} times",
            **facts,
        )
    else:
        regression.inconclusive(
            f"the shard still down {bound:.0f} s after the kill, no slot-epoch denial logged: "
            "down for another reason",
            **facts,
        )
