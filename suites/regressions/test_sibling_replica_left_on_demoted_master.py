"""Regression: after ``CLUSTER FAILOVER``, a sibling replica stays on the demoted master.

redis/redis#15472 (closed by redis/redis#15530, merged to unstable in 2026-08 after the
8.10 release; the thread names no release with it). The report: a shard of master A
with replicas B and C, ``CLUSTER FAILOVER`` on B. If C hears of the failover from A
first (A's ping saying "replica of B"), before B's own promotion broadcast, C keeps
replicating A, which now replicates B: a sub-replica that never heals. Reported on
7.2.8; the same code in 7.4 up to unstable. The reporter's trigger: B's broadcast to C
"dropped or delayed" on the B -> C path for some tens of ms; seen once in three manual
failovers one night, cross-DC.

Checked against the source (redis ``src/cluster_legacy.c``, unstable of 2024-10):
``clusterProcessPacket``, on a master that turned replica of a node in its own shard,
hands its slots to the new master at once (``clusterMoveNodeSlots``, from
redis/redis#13055, in 7.4.0; not in 7.2.0-7.2.6 here) and sets its config epoch. B's
later ping then claims slots C already gives it, so ``dirty_slots`` is 0 and
``clusterUpdateSlotsConfigWith``, home of the re-pointing and of the sub-replica
safeguard (redis/redis#10489), never runs; an UPDATE about B is "nothing new" by then,
and none comes later since C now advertises no slots. Redis 7.0 only deletes the
demoted master's slots, so the next claim of B's (an UPDATE, or B's ping) is dirty and
the safeguard ("I'm a sub-replica!") re-points C: not affected. Redis 6.2 has no
safeguard (its ``clusterUpdateSlotsConfigWith`` ends with the dirty-slots branch), so by
its code it keeps C on A too. Valkey 8.0 (valkey-io/valkey#445) runs a sub-replica
safeguard on the demotion itself: C follows B as soon as A's ping arrives. But Valkey
8.0.1 then takes B's stale pre-promotion ping ("replica of A"), delivered when the link
heals, as a demotion and runs the same safeguard backwards onto A, where nothing moves
C again (valkey-io/valkey#1015; "Ignore stale gossip packets that arrive out of order",
valkey-io/valkey#1777, is in 8.1.1). Same observable, another cause: the
``repointed_to_a`` fact tells it apart.

One change to the recipe: the drop covers every node but A, not only B. Any node that
hears C advertise A's old slots answers with an UPDATE naming B (``clusterProcessPacket``,
"sending an UPDATE message", sent to replicas too), which re-points C the normal way
("Configuration change detected"); with only B -> C cut, Redis 7.0 never even passed
through the sub-replica state here (0 of 6 runs), so on an affected version the bug
would show only when A's news beats every other node's UPDATE. With C hearing from A
alone, the report's precondition holds every run (A's own UPDATE still races on 7.0:
C was a sub-replica during the cut in 3 of 10 runs, re-pointed by B's first ping after
the heal). The drop ends once C lists A as a replica (it heard A's news): the report
needs no more, since nothing later heals it. Observable: once healed, C not a synced
replica of B within ``recovery_s()``, and its own ``INFO replication``
``master_host:master_port`` still A, now a replica.
"""

from __future__ import annotations

import pytest

from harness import Cluster
from harness.backends import Node
from harness.errors import NotReadyError
from harness.regressions import Bug, Regression
from harness.wait import wait_for

BUG = Bug(
    name="sibling-replica-left-on-demoted-master",
    reference="redis/redis#15472",
    title="after CLUSTER FAILOVER, a sibling replica that hears of it from the demoted master "
    "first keeps replicating it (a sub-replica) for good",
    affected="Redis 7.2.8 (reported), 7.4 up to unstable (redis/redis#13055's code); "
    "by the code also 6.2 (no sub-replica safeguard); not Redis 7.0; Valkey 8.0.1 through "
    "a stale packet (valkey-io/valkey#1015), not Valkey 8.1.1+",
    fixed="Redis unstable after 8.10 (redis/redis#15530)",
    observable="the sibling replica's master_host:port still the demoted master after healing",
)

pytestmark = [
    pytest.mark.regression(BUG),
    pytest.mark.requires("network_faults", "manual_failover"),
    pytest.mark.destructive("cuts a replica off from all but its master during a failover"),
]


def _replicating(cluster: Cluster, node: Node) -> str:
    """``host:port`` of the master ``node`` replicates, by its own INFO replication."""
    rep = cluster.replication_info(node)
    return f"{rep.get('master_host')}:{rep.get('master_port')}"


def _replica_of(cluster: Cluster, node: Node, master: Node) -> tuple[bool, str]:
    """Does ``node`` say, in its own CLUSTER NODES row, that it replicates ``master``?"""
    me = cluster.view(node, with_shards=False).myself
    seen = f"{node.addr}: flags={sorted(me.flags) if me else None}"
    return me is not None and me.master_id == master.node_id, seen


def _lists_as_replica(cluster: Cluster, observer: Node, node: Node) -> tuple[bool, str]:
    """Does ``observer`` list ``node`` as a replica (it heard of its demotion)?"""
    entry = cluster.view(observer, with_shards=False).by_id().get(node.node_id or "")
    seen = f"{observer.addr} lists {node.addr} as {sorted(entry.flags) if entry else 'unknown'}"
    return entry is not None and entry.is_replica, seen


@pytest.mark.cluster(masters=3, replicas=2, node_timeout_ms=1000)
def test_sibling_replica_left_on_demoted_master(cluster: Cluster, regression: Regression) -> None:
    """After a manual failover every replica of the shard MUST end up replicating the new
    master directly: C, whose master A became B's replica, re-points at B (the
    ``CLUSTER FAILOVER`` page: the old master becomes a replica of the promoted one; the
    specification, "Replica migration" and "How nodes rejoin the cluster": replicas follow
    the master that owns their shard's slots), however the news reached C."""
    a = cluster.initial_masters[0]
    b, c = cluster.replicas_of(a)[:2]
    others = [n for n in cluster.nodes if n not in (a, c)]
    nt_s = cluster.spec.node_timeout_ms / 1000
    with (
        regression.setup(f"cut C {c.addr} off from all but A; CLUSTER FAILOVER on B {b.addr}"),
        cluster.faults.dropping(others, c),
    ):
        assert b.call("CLUSTER", "FAILOVER") == "OK"
        bound = cluster.spec.failover_bound_ms() / 1000
        wait_for(lambda: _replica_of(cluster, a, b), bound, f"A {a.addr} a replica of B")
        # A pings every peer at least every node-timeout / 2: C hears its news.
        wait_for(lambda: _lists_as_replica(cluster, c, a), 2 * nt_s + 2, "C hearing of it")
        during = _replicating(cluster, c)
        regression.evidence(f"C replicating {during} while it heard from A alone")
    recovery = cluster.recovery_s()
    try:
        wait_for(
            lambda: cluster.probe_replica_of(c, b),
            recovery,
            f"C {c.addr} a synced replica of B {b.addr} after healing",
        )
    except NotReadyError as exc:
        late = str(exc)
    else:
        regression.not_reproduced(
            f"C {c.addr} a synced replica of the new master B {b.addr} after healing "
            f"(while cut off it replicated {during})",
            sub_replica_while_cut=during == a.addr,
        )
        return
    now = _replicating(cluster, c)
    if now != a.addr:
        regression.inconclusive(f"C replicates {now}, neither A nor (synced) B: {late}")
    a_master = _replicating(cluster, a)
    regression.evidence(f"A {a.addr} replicates {a_master} (B is {b.addr})")
    for n in (a, b, c):
        regression.evidence(f"as C sees it: {_row(c, n)}")
    lines = regression.log_lines(cluster, r"sub-replica|Reconfiguring myself")
    for line in lines[-4:]:
        regression.evidence(line)
    # Valkey's safeguard run backwards: a stale "B replica of A" packet after the heal
    back_to_a = any(ln.startswith(f"{c.name}:") and f"replica of {a.node_id}" in ln for ln in lines)
    regression.reproduced(
        f"C {c.addr} still replicates A {a.addr}, itself a replica of {a_master}, "
        f"{recovery:.0f} s after healing: a sub-replica of the new master B",
        sub_replica_while_cut=during == a.addr,
        c_master=now,
        repointed_to_a=back_to_a,
    )


def _row(observer: Node, node: Node) -> str:
    for line in str(observer.call("CLUSTER", "NODES")).splitlines():
        if line.startswith(node.node_id or "?"):
            return line.strip()
    return f"{node.addr} not listed"
