"""Conformance: Pub/Sub in a cluster. Classic channels are cluster-wide: a message
published on any node reaches the subscribers of every node, masters and replicas, and
``PUBLISH`` counts only the receivers on the node it ran on. Shard channels (Redis 7.0+)
live in the hash slot of their name: ``SSUBSCRIBE`` / ``SPUBLISH`` are served by the
nodes of the slot's shard (its master and its replicas), redirected with ``-MOVED``
elsewhere, refused with ``CROSSSLOT`` across slots, and a subscriber is told
``sunsubscribe`` when the slot leaves its shard.

Source: the "Redis Pub/Sub" page ("Sharded Pub/Sub"); the ``PUBLISH``, ``SUBSCRIBE``,
``SPUBLISH``, ``SSUBSCRIBE`` and ``SUNSUBSCRIBE`` pages; Redis Cluster specification,
"Pub/Sub"; the servers' own tests (``tests/cluster/tests/25-pubsubshard-slot-migration.tcl``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from harness import Cluster, key_for_slot
from harness.backends import Node
from harness.security import HARNESS_COMMANDS, acl_rules
from harness.testing import ErrorReply, Metrics, expect_error, raw_commands, wait_for

from ._migration import migration

PUBSUB_COMMANDS = ("publish", "subscribe", "unsubscribe", "spublish", "ssubscribe", "sunsubscribe")
MESSAGE_S = 5.0  # a message crosses the cluster bus in milliseconds; this is the bound
CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"


@pytest.fixture(autouse=True)
def _acl_allows_pubsub(cluster: Cluster) -> None:
    """Skip where the harness's ACL user may not use Pub/Sub (commands and channels)."""
    if cluster.security.user is None:
        return
    missing = [c for c in PUBSUB_COMMANDS if c not in HARNESS_COMMANDS]
    if not {"&*", "allchannels"} & set(acl_rules("-")):
        missing.append("channels (&*)")
    if missing:
        pytest.skip(
            f"the harness's ACL user {cluster.security.user!r} may not use Pub/Sub: "
            f"harness.security grants no {', '.join(missing)}"
        )


class Subscriber:
    """One subscribed connection to one node (redis-py ``PubSub``), read with bounds."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._client = node.client(timeout=MESSAGE_S)
        self.pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]

    def next(self, what: str, rule: str = "") -> dict[str, Any]:
        """The next message pushed on this connection, within :data:`MESSAGE_S`; a
        timeout names the ``rule`` the missing message breaks."""

        def probe() -> tuple[bool, dict[str, Any] | None]:
            msg = self.pubsub.get_message(timeout=0.1)
            return msg is not None, msg

        lead = f"{rule}: " if rule else ""
        where = f"{lead}{self.node.name} {self.node.addr} receiving {what}"
        got = wait_for(probe, MESSAGE_S, where)
        assert got is not None
        return got

    def close(self) -> None:
        self.pubsub.close()
        self._client.close()


@contextlib.contextmanager
def subscribers(nodes: list[Node]) -> Iterator[list[Subscriber]]:
    subs = [Subscriber(n) for n in nodes]
    try:
        yield subs
    finally:
        for s in subs:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                s.close()


def push(kind: str, channel: str, data: object) -> dict[str, Any]:
    """A pushed message as redis-py shows it (``pattern`` is for ``pmessage`` only)."""
    return {"type": kind, "pattern": None, "channel": channel, "data": data}


def _shard_of(cluster: Cluster, rng: random.Random, master: Node) -> tuple[int, list[Node]]:
    me = cluster.view(master, with_shards=False).myself
    assert me is not None and me.slots, f"{master.addr} owns no slots"
    lo, hi = me.slots[0]
    return rng.randint(lo, hi - 1), cluster.replicas_of(master)


@pytest.mark.shares_cluster
def test_publish_reaches_subscribers_on_every_node(cluster: Cluster, rng: random.Random) -> None:
    """MUST: a message ``PUBLISH``\\ ed on any node, master or replica, reaches the
    ``SUBSCRIBE``\\ rs of every node; the reply counts only the receivers connected to the
    node that ran it (here: one).

    The ``PUBLISH`` page (clients can publish to every node and subscribe on any; "only
    clients that are connected to the same node as the publishing client are included in
    the count"); Redis Cluster specification, "Pub/Sub".
    """
    rule = "PUBLISH on any node MUST reach the SUBSCRIBErs of every node"
    channel = f"news:{rng.randrange(10**9)}"
    with subscribers(cluster.nodes) as subs:
        for s in subs:
            s.pubsub.subscribe(channel)
            assert s.next("its subscribe") == push("subscribe", channel, 1)
        for pub in cluster.nodes:
            payload = f"from {pub.name}"
            got = pub.call("PUBLISH", channel, payload)
            assert got == 1, f"PUBLISH on {pub.addr} counted {got} receivers, not its own 1"
            for s in subs:
                msg = s.next(f"the message published on {pub.name} {pub.addr}", rule)
                assert msg == push("message", channel, payload), f"{rule}: {s.node.addr}: {msg}"


@pytest.mark.shares_cluster
@pytest.mark.requires("sharded_pubsub")
def test_shard_channels_are_served_by_their_shard(
    cluster: Cluster, rng: random.Random, metrics: Metrics
) -> None:
    """MUST: a shard channel is served by the shard owning its slot: ``SSUBSCRIBE`` on the
    master and on its replicas; ``SPUBLISH`` on the master counts the master's own
    receivers and reaches the subscribers of its replicas too, and no classic subscriber
    of that name elsewhere; every node of another shard answers both commands with
    ``-MOVED <slot> <owner>``. (Servers also take ``SPUBLISH`` on a replica of the owner,
    forwarding it in the shard, as their own tests do; the page says "must be sent to a
    node that owns the slot": recorded as metric ``replica_spublish``, not judged.)

    The ``SSUBSCRIBE`` page (subscribe "to a node covering a slot (primary/replica)";
    "can also return a -MOVED redirect"); the ``SPUBLISH`` page (forwarded "to all the
    nodes in the shard"; the count); the "Redis Pub/Sub" page, "Sharded Pub/Sub".
    """
    owner, other = cluster.initial_masters[0], cluster.initial_masters[1]
    slot, replicas = _shard_of(cluster, rng, owner)
    channel = key_for_slot(slot, prefix="shard:")
    with subscribers([owner, *replicas, other]) as subs:
        *shard, classic = subs
        for s in shard:
            s.pubsub.ssubscribe(channel)
            assert s.next("its ssubscribe") == push("ssubscribe", channel, 1)
        classic.pubsub.subscribe(channel)
        assert classic.next("its subscribe") == push("subscribe", channel, 1)
        got = owner.call("SPUBLISH", channel, "sharded")
        assert got == 1, f"SPUBLISH on the owner {owner.addr} counted {got}, not its own 1"
        for s in shard:
            msg = s.next("the shard message")
            assert msg == push("smessage", channel, "sharded"), f"{s.node.addr}: {msg}"
        # had the shard message leaked to classic subscribers, it would come first
        assert owner.call("PUBLISH", channel, "classic") == 0
        msg = classic.next("the classic message")
        assert msg == push("message", channel, "classic"), f"{other.addr}: {msg}"
        if replicas:
            (seen,) = raw_commands(replicas[0], ("SPUBLISH", channel, "via replica"))
            metrics.record(
                "replica_spublish", seen.text if isinstance(seen, ErrorReply) else str(seen)
            )
    want = f"MOVED {slot} {owner.public_addr}"
    for n in [other, *cluster.replicas_of(other)]:
        for cmd in (("SSUBSCRIBE", channel), ("SPUBLISH", channel, "x")):
            got_error = expect_error(n, *cmd, code="MOVED")
            assert got_error == want, f"{n.name} {n.addr} on {cmd[0]} of slot {slot}"


@pytest.mark.shares_cluster
@pytest.mark.requires("sharded_pubsub")
def test_ssubscribe_needs_one_slot(cluster: Cluster, rng: random.Random) -> None:
    """MUST: one ``SSUBSCRIBE`` names shard channels of a single slot; channels of two
    slots are refused with ``CROSSSLOT``, even on the node owning both. Channels sharing a
    hash tag share a slot and are accepted, one confirmation each.

    The ``SSUBSCRIBE`` page ("All the specified shard channels needs to belong to a single
    slot"); Redis Cluster specification, "Hash tags".
    """
    owner = cluster.initial_masters[0]
    slot, _ = _shard_of(cluster, rng, owner)
    a, b = key_for_slot(slot, prefix="cs:"), key_for_slot(slot + 1, prefix="cs:")
    got = expect_error(owner, "SSUBSCRIBE", a, b, code="CROSSSLOT")
    assert got == CROSSSLOT, f"{owner.addr} on SSUBSCRIBE of slots {slot} and {slot + 1}"
    tag = key_for_slot(slot, prefix="tag:")
    one, two = f"{{{tag}}}:a", f"{{{tag}}}:b"
    (first,) = raw_commands(owner, ("SSUBSCRIBE", one, two))
    assert first == [b"ssubscribe", one.encode(), 1], f"{owner.addr}: {first!r}"


@pytest.mark.destructive("moves a slot to the other master")
@pytest.mark.requires("sharded_pubsub")
@pytest.mark.cluster(masters=2, replicas=1)
def test_subscribers_are_told_when_the_slot_moves(cluster: Cluster, rng: random.Random) -> None:
    """MUST: when a slot leaves a shard, every subscriber of its shard channels there, on
    the old master and on its replicas, receives ``sunsubscribe`` for them (with the count
    of the subscriptions it keeps), and keeps its channels of other slots; the old master
    then redirects the channel with ``-MOVED`` to the new owner.

    The "Redis Pub/Sub" page, "Sharded Pub/Sub"; the ``SUNSUBSCRIBE`` page (the
    ``sunsubscribe`` message); the servers' own test
    ``tests/cluster/tests/25-pubsubshard-slot-migration.tcl``.
    """
    source, target = cluster.initial_masters
    slot, replicas = _shard_of(cluster, rng, source)
    moving, staying = key_for_slot(slot, prefix="mv:"), key_for_slot(slot + 1, prefix="st:")
    with subscribers([source, *replicas]) as subs:
        for s in subs:
            for count, ch in enumerate((moving, staying), 1):
                s.pubsub.ssubscribe(ch)
                assert s.next(f"its ssubscribe {ch}") == push("ssubscribe", ch, count)
        with migration(cluster, slot, source, target) as m:
            m.finish()
        for s in subs:
            msg = s.next(f"sunsubscribe of {moving} (slot {slot} moved)")
            assert msg == push("sunsubscribe", moving, 1), f"{s.node.addr}: {msg}"
        assert source.call("SPUBLISH", staying, "still") == 1
        for s in subs:
            msg = s.next(f"a message on {staying}, which did not move")
            assert msg == push("smessage", staying, "still"), f"{s.node.addr}: {msg}"
    got = expect_error(source, "SSUBSCRIBE", moving, code="MOVED")
    assert got == f"MOVED {slot} {target.public_addr}", f"{source.addr} after the move"
