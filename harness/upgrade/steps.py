"""Carrying out one step of an upgrade plan on a running cluster, on its timeline.

Each action is recorded as harness operations are (:func:`harness.ops.base.recorded`:
``<action>`` ahead, then ``-done`` or ``-failed``). A primary's restart and a failover
open fault windows (declared here, once), so the loss checker tells writes the cluster
may lose while a shard changes hands from writes lost while nothing was happening.

A step that cannot complete raises :class:`StepFailed` with the node's log tail: the
rehearsal turns it into a named risk (:mod:`harness.upgrade.risks`), never a crash.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

import redis

from harness import ops
from harness.errors import HarnessError
from harness.faults.kinds import declare
from harness.impl import Implementation
from harness.ops.base import deadline_s, recorded
from harness.ops.members import join
from harness.upgrade.plan import Step
from harness.upgrade.risks import classify
from harness.wait import Hopeless, wait_for

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster

# the shard changes hands, or has no primary for a moment: losses are classified
declare(
    "upgrade-primary",
    {"upgrade-primary-done", "upgrade-primary-failed"},
    replication_grace=True,
    doc="a primary restarted on another binary",
)
declare("failover", {"failover-done", "failover-failed"}, doc="CLUSTER FAILOVER to a replica")
declare(
    "takeover",
    {"takeover-done", "takeover-failed"},
    replication_grace=True,
    doc="CLUSTER FAILOVER TAKEOVER",
)

#: ``repl-diskless-sync-delay`` the unsafe ``replace-unsynced`` plan gives the primary, so
#: the first sync of its new replica cannot have finished when the takeover comes
UNSYNCED_DELAY_S = 5


class StepFailed(HarnessError):
    """A step could not complete; ``node`` is the node it was about, ``log`` its tail."""

    def __init__(self, message: str, node: Node, log: str) -> None:
        super().__init__(message)
        self.node = node
        self.log = log


class Executor:
    """Runs the steps of one plan on ``cluster``, moving nodes to ``target``. Nodes the
    plan adds are known by their plan name (``new-1-0``) from the step that adds them."""

    def __init__(self, cluster: Cluster, target: Implementation, timeout: float | None = None):
        self.cluster = cluster
        self.target = target
        self.timeout = timeout
        self.aliases: dict[str, Node] = {}
        #: the node the last step restarted on the new binary (the restart check's)
        self.upgraded: Node | None = None

    def node(self, name: str) -> Node:
        if name in self.aliases:
            return self.aliases[name]
        for n in [*self.cluster.nodes, *self.cluster.retired]:
            if n.name == name:
                return n
        raise HarnessError(f"the plan names {name}, which this cluster does not have")

    def primary_of(self, shard_primary: str) -> Node:
        """The current primary of the shard first led by ``shard_primary`` (a failover
        earlier in the plan may have moved it)."""
        first = self.node(shard_primary)
        view = self.cluster.view(first, with_shards=False).myself
        if view is None or view.master_id is None:
            return first
        return self.cluster.node_by_id(view.master_id)

    def bound(self) -> float:
        return deadline_s(self.cluster, self.timeout)

    def run(self, step: Step, shard_primary: str) -> str:
        """Carry out ``step``; returns what it did, in one line."""
        self.upgraded = None
        if step.action in ("upgrade-replica", "upgrade-primary"):
            return self._upgrade(step, self.node(step.node))
        if step.action in ("failover", "takeover"):
            return self._failover(step, self.node(step.node))
        if step.action == "add-replica":
            return self._add(step, self.primary_of(shard_primary))
        node = self.node(step.node)
        ops.remove_node(self.cluster, node, timeout=self.timeout)
        return f"{node.name} forgotten and stopped"

    # -- actions ------------------------------------------------------------------
    def _upgrade(self, step: Step, node: Node) -> str:
        c = self.cluster
        me = c.view(node, with_shards=False).myself
        master = c.node_by_id(me.master_id) if me is not None and me.master_id else None
        before = node.impl.describe()
        with recorded(c, step.action, node.addr, f"{node.name} -> {self.target.version_str}"):
            node.stop()
            c.backend.swap(node, self.target)
            self.restart(node, master)
        self.upgraded = node
        return f"{node.name}: {before} -> {self.target.version_str}"

    def restart(self, node: Node, master: Node | None) -> None:
        """Start ``node`` (its files kept) and wait until it answers and is back in its
        role: a synced replica of ``master``, or, as a primary, in a healthy cluster. A
        node that exits, or whose log names a refusal, fails at once."""
        c = self.cluster
        mark = len(node.log_text(200_000))
        node.start()
        try:
            node.wait_answering(self.bound())
        except HarnessError as exc:
            raise StepFailed(str(exc), node, node.log_text(20_000)) from None

        def back() -> tuple[bool, str]:
            tail = node.log_text(200_000)[mark:]
            refused = [r for r in classify(node.name, tail) if r.severity == "unsafe"]
            if refused:
                raise Hopeless(refused[0].describe())
            try:
                if master is not None and master is not node:
                    return c.probe_replica_of(node, master)
                return c.probe_healthy()
            except (redis.exceptions.RedisError, OSError) as exc:
                return False, f"{node.addr}: {exc}"

        what = f"a synced replica of {master.addr}" if master else "serving in a healthy cluster"
        try:
            wait_for(back, self.bound(), f"{node.name} {node.addr} back as {what}")
            # back in the cluster too: a failover right after a restart loses the votes
            # sent over bus links not yet reconnected (measured: the manual failover
            # then times out with 1 of 2 votes)
            wait_for(partial(links_up, c), self.bound(), f"every bus link to {node.name} up")
        except HarnessError as exc:
            raise StepFailed(str(exc), node, node.log_text(20_000)[-8000:]) from None

    def _failover(self, step: Step, node: Node) -> str:
        c = self.cluster
        me = c.view(node, with_shards=False).myself
        old = c.node_by_id(me.master_id) if me is not None and me.master_id else None
        how = ("TAKEOVER",) if step.action == "takeover" else ()
        if not how:  # the documented precondition: every node reaches every other
            wait_for(partial(links_up, c), self.bound(), "every bus link up before the failover")
        with recorded(c, step.action, node.addr, f"{node.name} {' '.join(how)}".strip()) as rec:
            t0 = time.monotonic()
            try:
                node.call("CLUSTER", "FAILOVER", *how)
            except redis.exceptions.ResponseError as exc:
                raise StepFailed(f"{node.addr} refused CLUSTER FAILOVER: {exc}", node, "") from None
            try:
                wait_for(
                    partial(_primary_everywhere, c, node),
                    self.bound(),
                    f"{node.name} {node.addr} the shard's primary as every node sees it",
                )
            except HarnessError as exc:
                raise StepFailed(str(exc), node, node.log_text(8000)) from None
            rec.result = f"{node.name} primary in {(time.monotonic() - t0) * 1000:.0f} ms"
        if old is not None and step.action == "takeover":
            old.call("CONFIG", "SET", "repl-diskless-sync-delay", "0")
        return rec.result

    def _add(self, step: Step, master: Node) -> str:
        c = self.cluster
        if step.sync:
            node = ops.add_replica(c, master, impl=self.target, timeout=self.timeout)
            self.aliases[step.node] = node
            return f"{node.name} ({self.target.version_str}) synced with {master.name}"
        # unsafe on purpose: the first sync is held back, the takeover comes first
        master.call("CONFIG", "SET", "repl-diskless-sync-delay", str(UNSYNCED_DELAY_S))
        (node,) = c.add_nodes(1, impl=self.target)
        self.aliases[step.node] = node
        # not "add-replica": the server's tool must not judge a cluster left unsettled
        with recorded(c, "add-replica-unsynced", node.addr, f"{node.name} of {master.addr}"):
            join(c, node, self.timeout, until_ok=False)
            node.call("CLUSTER", "REPLICATE", master.node_id)
        return f"{node.name} ({self.target.version_str}) replicating {master.name}, not synced"


def _primary_everywhere(cluster: Cluster, node: Node) -> tuple[bool, str]:
    not_yet = []
    for v in cluster.snapshot(cluster.live_nodes(), with_shards=False).views:
        entry = v.by_id().get(node.node_id or "")
        if entry is None or "master" not in entry.flags:
            not_yet.append(v.observer)
    return not not_yet, f"not yet primary as {', '.join(not_yet)} see it"


def links_up(cluster: Cluster) -> tuple[bool, str]:
    """Every live node lists every other live node ``connected`` and not failing."""
    live = cluster.live_nodes()
    ids = {n.node_id for n in live}
    down = []
    for v in cluster.snapshot(live, with_shards=False).views:
        for e in v.nodes:
            linked = e.link_state == "connected" and not e.flags & {"fail", "fail?"}
            if e.node_id in ids and not e.is_myself and not linked:
                down.append(f"{v.observer} -> {e.addr} {e.link_state} {','.join(sorted(e.flags))}")
    return not down, "; ".join(down[:6]) or "all links up"
