"""Conformance: what clients see while a hash slot moves between masters (live
resharding). The source, in ``MIGRATING`` state, serves the keys it still holds and
answers ``-ASK <slot> <target>`` for the others; the target, in ``IMPORTING`` state,
serves a query about the slot only right after ``ASKING`` (once) and otherwise redirects
to the owner with ``-MOVED``; a multi-key command on keys split between the two, or
missing, answers ``-TRYAGAIN``; ``CLUSTER SETSLOT <slot> NODE <target>`` on the masters
hands the slot over, after which every node redirects it to the target.

Each test opens its migration with the raw commands (:mod:`._migration`) and closes it
again (rolled back, or moved there and back), so the layout is unchanged at the end and
the tests share a cluster.

Source: Redis Cluster specification, "Redirection and resharding" ("Live
reconfiguration", "ASK redirection", "Multi-keys operations"); the ``CLUSTER SETSLOT``,
``ASKING``, ``CLUSTER NODES`` pages and the "TRYAGAIN error" / "ASK error" pages.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from harness import Cluster
from harness.backends import Node
from harness.testing import ErrorReply, Metrics, raw_commands, wait_for

from ._migration import (
    agree_on_owner,
    markers,
    migration,
    reply,
    slot_keys,
    text,
)

pytestmark = [
    pytest.mark.shares_cluster,
    pytest.mark.destructive("opens slot migrations and moves keys between masters"),
]

TRYAGAIN = "TRYAGAIN"


def _pick(cluster: Cluster, rng: random.Random) -> tuple[int, Node, Node]:
    """A slot of the first master, and the master it will move to."""
    source, target = cluster.initial_masters[0], cluster.initial_masters[1]
    me = cluster.view(source, with_shards=False).myself
    assert me is not None and me.slots, f"{source.addr} owns no slots"
    lo, hi = me.slots[0]
    return rng.randint(lo, hi), source, target


def _write(node: Node, keys: list[str]) -> None:
    for k in keys:
        node.call("SET", k, k)


def test_source_serves_keys_not_yet_moved(cluster: Cluster, rng: random.Random) -> None:
    """MUST: while a slot is ``MIGRATING``, its owner still processes every command about a
    key it holds, reads and writes, without redirection.

    Redis Cluster specification, "Live reconfiguration" (a ``MIGRATING`` node accepts all
    queries about the slot whose key exists); ``CLUSTER SETSLOT`` page, ``MIGRATING`` (a
    command about an existing key is processed normally).
    """
    slot, source, target = _pick(cluster, rng)
    a, b = slot_keys(slot, "ab")
    _write(source, [a, b])
    with migration(cluster, slot, source, target) as m:
        m.move(a)
        assert reply(source, "GET", b) == b.encode()
        assert reply(source, "SET", b, "new") == "OK"
        assert reply(source, "GET", b) == b"new"


def test_source_answers_ask_for_a_moved_key(cluster: Cluster, rng: random.Random) -> None:
    """MUST: a ``MIGRATING`` source asked about a key of the slot it no longer holds
    answers ``-ASK <slot> <endpoint>:<port>`` naming the target as the cluster announces
    it, for reads and writes alike.

    Redis Cluster specification, "ASK redirection"; ``CLUSTER SETSLOT`` page,
    ``MIGRATING`` (a command about a key that does not exist is redirected with ASK).
    """
    slot, source, target = _pick(cluster, rng)
    (a,) = slot_keys(slot, "a")
    _write(source, [a])
    with migration(cluster, slot, source, target) as m:
        m.move(a)
        want = f"ASK {slot} {target.public_addr}"
        for cmd in (("GET", a), ("SET", a, "v"), ("EXISTS", a)):
            got = reply(source, *cmd)
            assert isinstance(got, ErrorReply) and got.text == want, (
                f"{source.addr} on {cmd[0]} of a moved key: {text(got)}, expected {want!r}"
            )


def test_target_serves_a_moved_key_only_after_asking_once(
    cluster: Cluster, rng: random.Random
) -> None:
    """MUST: the ``IMPORTING`` target answers a query about the slot with ``-MOVED <slot>
    <source>`` (the owner) unless the client sent ``ASKING`` first; after ``ASKING`` it
    serves the next command, and only that one: ``ASKING`` is a one-time flag, so the
    following command on the same connection is redirected again.

    Redis Cluster specification, "ASK redirection" (``ASKING`` sets a one-time flag);
    ``CLUSTER SETSLOT`` page, ``IMPORTING``; ``ASKING`` page.
    """
    slot, source, target = _pick(cluster, rng)
    (a,) = slot_keys(slot, "a")
    _write(source, [a])
    with migration(cluster, slot, source, target) as m:
        m.move(a)
        moved = f"MOVED {slot} {source.public_addr}"
        got = reply(target, "GET", a)
        assert isinstance(got, ErrorReply) and got.text == moved, (
            f"{target.addr} without ASKING: {text(got)}, expected {moved!r}"
        )
        asking, first, second = raw_commands(target, ("ASKING",), ("GET", a), ("GET", a))
        assert asking == "OK"
        assert first == a.encode(), f"{target.addr} after ASKING: {text(first)}"
        assert isinstance(second, ErrorReply) and second.text == moved, (
            f"{target.addr}, second command after one ASKING: {text(second)}, "
            f"expected {moved!r} (ASKING is one-shot)"
        )


def test_multi_key_commands_on_a_split_slot_answer_tryagain(
    cluster: Cluster, rng: random.Random, metrics: Metrics
) -> None:
    """MUST: a multi-key command about keys of a migrating slot that are split between
    source and target cannot be served by either node: a client following the cluster's
    redirections ends with ``-TRYAGAIN``, and nothing is written. The target after
    ``ASKING`` answers ``TRYAGAIN`` (it lacks some keys). The source answers ``TRYAGAIN``
    itself (Redis 7.0+, Valkey) or, lacking a key, ``-ASK`` to the target (then
    ``TRYAGAIN`` there; see the next test). Which one it was is recorded
    (metric ``source_reply``).

    Redis Cluster specification, "Multi-keys operations" (keys split between source and
    destination generate ``-TRYAGAIN``); "TRYAGAIN error" page.
    """
    slot, source, target = _pick(cluster, rng)
    a, b = slot_keys(slot, "ab")
    _write(source, [a, b])
    ask = f"ASK {slot} {target.public_addr}"
    with migration(cluster, slot, source, target) as m:
        m.move(a)
        seen = set()
        for cmd in (("MGET", a, b), ("DEL", a, b), ("MSET", a, "x", b, "y")):
            got = reply(source, *cmd)
            assert isinstance(got, ErrorReply) and (got.code == TRYAGAIN or got.text == ask), (
                f"{source.addr} on {cmd[0]} of keys split with the target: {text(got)}"
            )
            seen.add(got.code)
            got = reply(target, *cmd, asking=True)
            assert isinstance(got, ErrorReply) and got.code == TRYAGAIN, (
                f"{target.addr} after ASKING, {cmd[0]} of keys split with the source: {text(got)}"
            )
            assert got.text.startswith("TRYAGAIN "), got.text
        metrics.record("source_reply", "/".join(sorted(seen)))
        assert reply(source, "GET", b) == b.encode(), "a refused command changed the source"
        assert reply(target, "GET", a, asking=True) == a.encode(), "... or the target"


def test_source_holding_some_keys_answers_tryagain_itself(
    cluster: Cluster, rng: random.Random
) -> None:
    """SHOULD: a source that holds some but not all keys of a multi-key command answers
    ``-TRYAGAIN`` at once rather than ``-ASK``: neither node can run the command, and an
    ASK only costs the client a hop to a target that answers ``TRYAGAIN`` too. (Before
    Redis 7.0, redis/redis#9526, the source sent ``ASK``: a known issue of redis-6.2.)

    "TRYAGAIN error" page (the old node answers ``TRYAGAIN`` to an ``MGET`` of a key it
    holds and one already moved); Redis Cluster specification, "Multi-keys operations".
    """
    slot, source, target = _pick(cluster, rng)
    a, b = slot_keys(slot, "ab")
    _write(source, [a, b])
    with migration(cluster, slot, source, target) as m:
        m.move(a)
        for cmd in (("MGET", a, b), ("DEL", a, b)):
            got = reply(source, *cmd)
            assert isinstance(got, ErrorReply), f"{source.addr} served {cmd[0]} of split keys"
            assert got.code == TRYAGAIN, (
                f"{source.addr} on {cmd[0]}: a migrating source holding only some of the keys "
                f"answered {got.text!r}, expected TRYAGAIN"
            )


def test_multi_key_commands_are_served_where_all_keys_are(
    cluster: Cluster, rng: random.Random
) -> None:
    """MUST: during a migration a multi-key command whose keys all exist on one side is
    still served there: by the source for keys not yet moved, by the target (after
    ``ASKING``) for keys already moved.

    Redis Cluster specification, "Multi-keys operations" (multi-key operations on keys
    that all exist, on the source or the destination, remain available).
    """
    slot, source, target = _pick(cluster, rng)
    a, b, c, d = slot_keys(slot, "abcd")
    _write(source, [a, b, c, d])
    with migration(cluster, slot, source, target) as m:
        m.move(a, b)
        assert reply(source, "MGET", c, d) == [c.encode(), d.encode()]
        assert reply(target, "MGET", a, b, asking=True) == [a.encode(), b.encode()]
        assert reply(target, "MSET", a, "1", b, "2", asking=True) == "OK"
        assert reply(target, "MGET", a, b, asking=True) == [b"1", b"2"]


def test_new_keys_of_a_migrating_slot_go_to_the_target(
    cluster: Cluster, rng: random.Random
) -> None:
    """MUST: a key that does not exist on the ``MIGRATING`` source is redirected with
    ``-ASK`` even for a write, so new keys of the slot are created on the target (after
    ``ASKING``), never on the source. A multi-key write of new keys is refused on both:
    ``ASK`` from the source (it has none of them), ``TRYAGAIN`` from the target (keys
    that do not exist).

    Redis Cluster specification, "Live reconfiguration" (queries about keys that do not
    exist are forwarded with ``-ASK``, so all new keys are created on the target) and
    "Multi-keys operations" (operations on keys that don't exist generate ``-TRYAGAIN``).
    """
    slot, source, target = _pick(cluster, rng)
    n, x, y = slot_keys(slot, "nxy")
    ask = f"ASK {slot} {target.public_addr}"
    with migration(cluster, slot, source, target):
        for cmd in (("SET", n, "v"), ("MSET", x, "1", y, "2")):
            got = reply(source, *cmd)
            assert isinstance(got, ErrorReply) and got.text == ask, (
                f"{source.addr} on {cmd[0]} of new keys: {text(got)}, expected {ask!r}"
            )
        assert reply(target, "SET", n, "v", asking=True) == "OK"
        assert reply(target, "GET", n, asking=True) == b"v"
        assert int(str(source.call("CLUSTER", "COUNTKEYSINSLOT", slot))) == 0, (
            f"{source.addr} holds keys of slot {slot} that were written through the target"
        )
        got = reply(target, "MSET", x, "1", y, "2", asking=True)
        assert isinstance(got, ErrorReply) and got.code == TRYAGAIN, (
            f"{target.addr} after ASKING, MSET of new keys: {text(got)}"
        )


def test_cluster_nodes_shows_open_slots_until_stable(cluster: Cluster, rng: random.Random) -> None:
    """MUST: while a slot is open, the source's own ``CLUSTER NODES`` line carries
    ``[<slot>->-<target id>]`` and the target's ``[<slot>-<-<source id>]``; no node shows
    them on another node's line; ``CLUSTER SETSLOT <slot> STABLE`` clears each.

    ``CLUSTER NODES`` page (migrating and importing slots, shown for the node itself);
    ``CLUSTER SETSLOT`` page, ``STABLE`` (clears any importing / migrating state).
    """
    slot, source, target = _pick(cluster, rng)
    with migration(cluster, slot, source, target) as m:
        assert markers(cluster, source) == (((slot, target.node_id),), ())
        assert markers(cluster, target) == ((), ((slot, source.node_id),))
        for n in cluster.nodes:
            others = [e for e in cluster.view(n, with_shards=False).nodes if not e.is_myself]
            shown = [
                (e.addr, e.migrating, e.importing) for e in others if e.migrating or e.importing
            ]
            assert not shown, f"{n.addr} shows migration state on other nodes' lines: {shown}"
        m.roll_back()  # STABLE on the source, then on the target
        assert markers(cluster, source) == ((), ())
        assert markers(cluster, target) == ((), ())


@pytest.mark.requires("replicated_setslot")
def test_replicas_follow_their_masters_open_slots(cluster: Cluster, rng: random.Random) -> None:
    """MUST (servers that replicate ``CLUSTER SETSLOT``, Valkey 8+): a replica takes its
    master's migrating / importing state, so a replica promoted mid-migration keeps the
    slot open, and clears it with its master.

    Valkey ``CLUSTER SETSLOT`` page (the command is replicated to the primary's replicas);
    ``CLUSTER NODES`` page.
    """
    slot, source, target = _pick(cluster, rng)
    want = {source: (((slot, target.node_id),), ()), target: ((), ((slot, source.node_id),))}

    def replicas_show(expect: Mapping[Node, object]) -> tuple[bool, str]:
        seen = {r.addr: markers(cluster, r) for m in expect for r in cluster.replicas_of(m)}
        wanted = {r.addr: expect[m] for m in expect for r in cluster.replicas_of(m)}
        return seen == wanted, f"seen {seen}, wanted {wanted}"

    with migration(cluster, slot, source, target) as m:
        wait_for(lambda: replicas_show(want), 5, "replicas showing their masters' open slot")
        m.roll_back()
        cleared = {n: ((), ()) for n in want}
        wait_for(lambda: replicas_show(cleared), 5, "replicas clearing the slot's state")


def test_setslot_node_on_every_master_moves_the_slot(cluster: Cluster, rng: random.Random) -> None:
    """MUST: once every key is moved and ``CLUSTER SETSLOT <slot> NODE <target>`` was sent
    to the target, the source and the other masters, the target serves the slot without
    ``ASKING``, every other node (replicas too, once they learn the new configuration)
    answers ``-MOVED <slot> <target>``, and the open-slot markers are gone. Moved back the
    same way, the slot is the source's again.

    ``CLUSTER SETSLOT`` page ("Redis Cluster live resharding explained", ``NODE``: on the
    migrating and importing nodes it clears the migration state); Redis Cluster
    specification, "Live reconfiguration" and "Hash slots configuration propagation".
    """
    slot, source, target = _pick(cluster, rng)
    keys = slot_keys(slot, "abc")
    _write(source, keys)
    with migration(cluster, slot, source, target) as m:
        m.finish()
    assert reply(target, "MGET", *keys) == [k.encode() for k in keys]
    for n in (source, target):
        assert markers(cluster, n) == ((), ()), f"{n.addr} still shows the slot open"
    with migration(cluster, slot, target, source) as back:
        back.finish()
    agree_on_owner(cluster, slot, source)
    assert reply(source, "MGET", *keys) == [k.encode() for k in keys]
