"""Regression: a restarted node refuses its own ``nodes.conf`` ("Unrecoverable error:
corrupted cluster config file") because the file lists a replica whose shard id differs
from its primary's.

Report: valkey-io/valkey#2171 (closed), from production "after some nodes were
restarted"; the reporter reproduced it on 7.2.9 and the dev branch only by editing the
file, and asked whether "a replica reassigned a new master [that] at that stage goes
down" leaves the old shard id behind. Fixed by valkey-io/valkey#2174 ("Converge divergent
shard-id persisted in nodes.conf to primary's shard id": the loader takes the primary's
id and logs "Node ... has a different shard id ... Updating replica's shard id to match
primary's shard id"): released in 8.0.6 (its release notes), present in 8.1.8 (the line is
in its binary and logged here), backported to 7.2 by valkey-io/valkey#3229. Redis 7.2
shares the loader (the report says Redis fixed it in redis/redis#13428). Redis < 7.2
keeps no shard ids in ``nodes.conf``, so it cannot refuse a file over one.

What Valkey 8.0.1's source says (src/cluster_legacy.c): ``clusterLoadConfig`` jumps to
``fmterr`` when a replica's persisted shard id differs from its already-loaded primary's,
and ``auxShardIdSetter`` fails the same way when a primary's line comes after a replica
that disagrees with it; so *any* such pair in the file stops the start, whichever node
it describes. Such a pair is written when a primary changes shard while one of its
replicas is down: ``clusterSetPrimary`` gives the primary its new primary's shard id
(``updateShardId(myself, ...)``), and every node that hears its next PING takes that id
for it (``clusterProcessPingExtensions`` -> ``updateShardId(sender, ...)``), which only
updates the sender and ``myself``: the replica keeps the old id and is still listed as
the primary's replica until it says otherwise itself, which a stopped replica does not.
Each node saves that file (``CLUSTER_TODO_SAVE_CONFIG``), P too (P restarted here
refused its own file as well). With the replica up, the same
state lasts until its next PING to each node (by the source; not measured here). The
racy form measured here is another path to the same refusal: a node killed and started
right after the cluster is ready, before the shard ids have settled (valkey-io/valkey#774):
2 of 6 masters refused their file on 8.0.1 at a node timeout of 5000 ms, 0 of 6 at 2000 ms.

Recipe here (deterministic): 3 masters, then an empty master P with a replica R (the
first step of a scale-out); stop R; ``CLUSTER REPLICATE`` a master Q on P (allowed: P owns
no slots and no keys), so P joins Q's shard; once a bystander master X lists P as Q's
replica, restart X gracefully. Reproduced = X does not come back and its log has
"corrupted cluster config file"; not reproduced = X is back with its own node ID (its
``nodes.conf`` loaded) and says ``cluster_state:ok``. X failing any other way is
inconclusive.
"""

from __future__ import annotations

import pytest

from harness import Cluster, ops
from harness.backends import Node
from harness.errors import HarnessError
from harness.regressions import Bug, Regression
from harness.testing import wait_for
from harness.topology import parse_cluster_nodes, parse_cluster_shards, parse_info

BUG = Bug(
    name="restart-refuses-nodes-conf",
    reference="valkey-io/valkey#2171",
    title=(
        "a restarted node refuses its own nodes.conf: a replica's shard id differs from its "
        "primary's (a primary changed shard while its replica was down)"
    ),
    affected="Valkey 7.2 and 8.0 before 8.0.6, 8.1 before the fix; Redis 7.2 (same check)",
    fixed="Valkey 8.0.6 and 8.1 (valkey-io/valkey#2174; in 8.1.8), 7.2 (valkey-io/valkey#3229)",
    observable="the node exits at start-up: 'corrupted cluster config file'",
)

pytestmark = [pytest.mark.regression(BUG), pytest.mark.destructive("reconfigures and restarts")]

REFUSED = "corrupted cluster config file"
#: what a server with the fix logs instead when it loads such a file
RECONCILED = "Updating replica's shard id to match primary's shard id"


@pytest.mark.cluster(masters=3, replicas=0, node_timeout_ms=1000)
def test_restart_refuses_nodes_conf(cluster: Cluster, regression: Regression) -> None:
    """A node whose ``nodes.conf`` lists a replica outside its primary's shard must still
    start (valkey-io/valkey#2171, fixed by valkey-io/valkey#2174)."""
    q, bystander = regression.rng.sample(cluster.initial_masters, 2)
    with regression.setup("an empty master P with a synced replica R"):
        p = ops.add_master(cluster)
        r = ops.add_replica(cluster, p)
    with regression.setup(f"stop R, CLUSTER REPLICATE {q.name} on P"):
        cluster.faults.stop(r)
        p.call("CLUSTER", "REPLICATE", q.node_id)
        wait_for(
            lambda: _replica_in_view(bystander, p, q),
            cluster.recovery_s(),
            f"{bystander.name} listing P {p.name} as a replica of {q.name}",
        )
    regression.evidence(f"P={p.name} R={r.name} (stopped) Q={q.name}; restarting {bystander.name}")
    for row in _rows(bystander, [p, r]):
        regression.evidence(f"{bystander.name} CLUSTER NODES before: {row}")
    if cluster.impl.has("cluster_shards"):
        regression.evidence(f"{bystander.name} CLUSTER SHARDS before: {_shard_of(bystander, r, p)}")
    try:
        cluster.faults.restart(bystander)
    except HarnessError as exc:
        refused = [ln for ln in bystander.log_text(200_000).splitlines() if REFUSED in ln]
        if not refused:
            regression.inconclusive(
                f"{bystander.name} did not come back, for another reason: {exc}"
            )
        regression.reproduced(
            f"{bystander.name} refuses its own nodes.conf at start-up: {refused[-1].strip()}",
            restarted=bystander.name,
        )
        return
    me = str(bystander.call("CLUSTER", "MYID"))
    if me != bystander.node_id:
        regression.inconclusive(f"{bystander.name} came back as a new node {me}: not its file")
    with regression.setup(f"{bystander.name} in cluster_state:ok after its restart"):
        wait_for(lambda: _state_ok(bystander), cluster.recovery_s(), f"{bystander.name} state ok")
    for line in bystander.log_text(20_000).splitlines():
        if RECONCILED in line:
            regression.evidence(f"{bystander.name}: {line.strip()}")
    regression.not_reproduced(
        f"{bystander.name} back with its nodes.conf (node ID {me[:8]}) and cluster_state:ok",
        restarted=bystander.name,
    )


def _replica_in_view(observer: Node, replica: Node, master: Node) -> tuple[bool, str]:
    entry = {e.node_id: e for e in parse_cluster_nodes(str(observer.call("CLUSTER", "NODES")))}
    seen = entry.get(replica.node_id or "")
    ok = seen is not None and seen.is_replica and seen.master_id == master.node_id
    return ok, f"{replica.name} as {observer.name} sees it: {seen}"


def _rows(observer: Node, nodes: list[Node]) -> list[str]:
    ids = {n.node_id for n in nodes}
    text = str(observer.call("CLUSTER", "NODES"))
    return [ln for ln in text.splitlines() if ln.split(" ", 1)[0] in ids]


def _shard_of(observer: Node, replica: Node, primary: Node) -> str:
    """Whether ``observer``'s CLUSTER SHARDS puts ``replica`` in ``primary``'s shard."""
    for shard in parse_cluster_shards(observer.call("CLUSTER", "SHARDS")):  # type: ignore[arg-type]
        ids = [n.node_id for n in shard.nodes]
        if replica.node_id in ids:
            where = "with" if primary.node_id in ids else "without"
            return f"{replica.name} in a shard of {len(ids)} node(s), {where} its primary"
    return f"{replica.name} in no shard"


def _state_ok(node: Node) -> tuple[bool, str]:
    state = parse_info(str(node.call("CLUSTER", "INFO"))).get("cluster_state")
    return state == "ok", f"cluster_state:{state}"
