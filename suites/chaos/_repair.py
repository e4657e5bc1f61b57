"""A slot under migration with known contents, read the way a client reads it, and the
repair an operator makes when a master died mid-migration.

The slot is filled with sets of known, acknowledged values (one hash tag, so all land in
it), so where every key is and what it holds can be checked exactly, apart from the
workload's own keys. Reads follow ``MOVED``/``ASK`` as the specification tells clients
to ("Redirection and resharding"), hop by hop on plain connections: a client library's
own bugs stay out of the verdict, and an ``ASK`` to a dead node shows as what it is.

The repair finishes the migration from wherever the slot is now: its live owner (the
promoted replica, or the source) moves it, in the documented order, to the one other
master holding its moved keys (importing it, or merely holding them, as
``redis-cli --cluster fix`` counts them: ``clusterManagerFixOpenSlot``). That is fix's
"case 1" when both sides are open; where only the holder is, fix moves the keys back to
the owner instead ("case 2"); either closes the slot, finishing keeps the operator's
intent. One step comes first where a server needs it: an importing node ignores
ownership updates for the slot (so it never learns that a replica took over the dead
source, names a failed owner and reports ``cluster_state:fail``); it is told the live
owner with ``SETSLOT NODE`` before the move goes on. (``redis-cli --cluster fix`` itself
refuses while the dead master is still known, unless given
``--cluster-fix-with-unreachable-masters``.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from harness import Cluster
from harness.backends import Node
from harness.crc16 import key_for_slot, key_slot
from harness.ops import MigrationError, SlotMigration, inspect_slots
from harness.topology import parse_info
from harness.wait import wait_for

BEFORE = "before"  # the value every filler key gets when the slot is filled
DURING = "during"  # the value written, through redirections, once batches moved


def fill_slot(cluster: Cluster, owner: Node, slot: int, count: int) -> list[str]:
    """``count`` sets in ``slot``, each holding :data:`BEFORE`, acknowledged by the
    owner's replicas too (``WAIT``), so a failover that follows cannot lose them."""
    tag = key_for_slot(slot, prefix="fill")
    keys = [f"{{{tag}}}:{i}" for i in range(count)]
    replicas = len(cluster.replicas_of(owner))
    for k in keys:
        owner.call("SADD", k, BEFORE)
    if replicas:
        # WAIT counts the writes of its own connection: one connection for both
        with cluster.node_client(owner, timeout=5.0) as c:
            c.set(f"{{{tag}}}:mark", "1")
            acked = int(str(c.execute_command("WAIT", replicas, 5000)))  # type: ignore[no-untyped-call]
            c.delete(f"{{{tag}}}:mark")
        assert acked == replicas, f"{acked} of {replicas} replicas acknowledged the fill"
    return keys


def keys_on(node: Node, slot: int) -> set[str]:
    """The keys of ``slot`` that ``node`` holds (whatever it thinks of the slot)."""
    count = int(str(node.call("CLUSTER", "COUNTKEYSINSLOT", slot)))
    got = node.call("CLUSTER", "GETKEYSINSLOT", slot, max(count, 1), timeout=5.0)
    assert isinstance(got, list)
    return {str(k) for k in got}


def offset(node: Node, field: str) -> int:
    return int(parse_info(str(node.call("INFO", "replication"))).get(field, "-1"))


def wait_caught_up(cluster: Cluster, master: Node, replica: Node) -> None:
    """Until ``replica`` has applied everything ``master`` had written when asked: a
    fault that follows then finds the migration's batches on both, which is the state the
    test is about (a batch still in flight is asynchronous replication's window)."""
    goal = offset(master, "master_repl_offset")
    wait_for(
        lambda: (
            offset(replica, "slave_repl_offset") >= goal,
            offset(replica, "slave_repl_offset"),
        ),
        cluster.spec.failover_bound_ms() / 1000,
        f"{replica.addr} caught up with {master.addr} at offset {goal}",
        describe=lambda seen: f"replica offset {seen}",
    )


@dataclass(frozen=True)
class Read:
    """What a client following redirections got for one key."""

    key: str
    members: frozenset[str] | None  # None: no answer (see ``route``)
    route: str  # "n1 -> ASK n2" ..., or the error that ended it

    @property
    def ok(self) -> bool:
        return self.members is not None


def _by_public_addr(cluster: Cluster) -> dict[str, Node]:
    return {n.public_addr: n for n in cluster.nodes}


def majority_owner(cluster: Cluster, slot: int) -> Node:
    """The owner of ``slot`` most live nodes name: where a client's map sends it (one
    node's view may be stale, as an importing node's is after a failover)."""
    report = inspect_slots(cluster, slot)[0]
    named = Counter(o for o in report.owner.values() if o is not None).most_common(1)
    if not named:
        raise MigrationError(f"slot {slot}: no live node names an owner", [report])
    return cluster.node_by_id(named[0][0])


def client_call(
    cluster: Cluster, key: str, *cmd: object, start: Node | None = None, hops: int = 4
) -> tuple[object, str]:
    """``cmd`` (whose key is ``key``) sent where the cluster's map says (``start``:
    the slot's owner as most nodes name it), following ``MOVED`` and ``ASK`` (with
    ``ASKING``) hop by hop; returns the reply and the route. Raises
    ``redis.RedisError``/``OSError`` with the route when a hop fails."""
    nodes = _by_public_addr(cluster)
    node: Node | None = start or majority_owner(cluster, key_slot(key))
    asking = False
    route: list[str] = []
    for _ in range(hops):
        assert node is not None
        route.append(("ASK " if asking else "") + node.addr)
        if node.state != "running":
            raise ConnectionError(f"{' -> '.join(route)}: the node named is {node.state}")
        try:
            with node.client(timeout=2.0) as c:
                if asking:
                    pipe = c.pipeline(transaction=False)
                    pipe.execute_command("ASKING")
                    pipe.execute_command(*cmd)
                    return pipe.execute()[1], " -> ".join(route)
                return c.execute_command(*cmd), " -> ".join(route)
        except (redis.exceptions.AskError, redis.exceptions.MovedError) as exc:
            asking = isinstance(exc, redis.exceptions.AskError)
            addr = f"{exc.host}:{exc.port}"
            node = nodes.get(addr)
            if node is None:
                raise ConnectionError(
                    f"{' -> '.join(route)}: redirected to unknown {addr}"
                ) from None
        except (redis.exceptions.RedisError, OSError) as exc:
            raise type(exc)(f"{' -> '.join(route)}: {exc}") from None
    raise ConnectionError(f"{' -> '.join(route)}: more than {hops} redirections")


def read(cluster: Cluster, key: str, start: Node | None = None) -> Read:
    try:
        got, route = client_call(cluster, key, "SMEMBERS", key, start=start)
    except (redis.exceptions.RedisError, OSError) as exc:
        return Read(key, None, f"{type(exc).__name__}: {exc}")
    assert isinstance(got, list)
    return Read(key, frozenset(str(v) for v in got), route)


def write_during(cluster: Cluster, keys: Sequence[str]) -> None:
    """Add :data:`DURING` to each key through the redirections (so a key already moved is
    written on the target, after an ``ASK``); each write must be acknowledged."""
    starts = {s: majority_owner(cluster, s) for s in {key_slot(k) for k in keys}}
    for k in keys:
        client_call(cluster, k, "SADD", k, DURING, start=starts[key_slot(k)])


def unreadable(cluster: Cluster, expected: dict[str, frozenset[str]]) -> list[Read]:
    """The keys a client cannot read back with every acknowledged value."""
    out = []
    starts = {s: majority_owner(cluster, s) for s in {key_slot(k) for k in expected}}
    for key, want in expected.items():
        r = read(cluster, key, starts[key_slot(key)])
        if r.members is None or not want <= r.members:
            out.append(r)
    return out


# -- the operator's repair -------------------------------------------------------------------


def _masters(cluster: Cluster) -> dict[str, Node]:
    """Live masters by id, each as it describes itself."""
    out = {}
    for n in cluster.live_nodes():
        me = cluster.view(n, with_shards=False).myself
        if me is not None and me.is_master:
            out[me.node_id] = n
    return out


def repair(cluster: Cluster, slot: int, batch: int = 100) -> list[str]:
    """Close ``slot`` by finishing its migration (see the module's notes); return what was
    done. Raises :class:`MigrationError` for a state this repair cannot handle."""
    masters = _masters(cluster)
    report = inspect_slots(cluster, slot)[0]
    owners = {o for nid, o in report.owner.items() if nid in masters and o in masters}
    if len(owners) != 1:
        raise MigrationError(f"slot {slot}: no single live owner to repair from", [report])
    owner = masters[owners.pop()]
    migrating = [masters[n] for n in report.migrating if n in masters]
    holders = [
        masters[n]
        for n, k in report.keys.items()
        if n in masters and masters[n] is not owner and (k or n in report.importing)
    ]
    done: list[str] = []
    if not report.is_open and not holders:
        return ["nothing to repair"]
    if len(holders) != 1 or migrating not in ([], [owner]):
        raise MigrationError(f"slot {slot}: an open state this repair does not handle", [report])
    target = holders[0]
    cluster.record("repair", owner.addr, f"slot {slot} -> {target.addr}", ahead=True)
    if report.owner.get(target.node_id or "") != owner.node_id:
        target.call("CLUSTER", "SETSLOT", slot, "NODE", owner.node_id, timeout=15.0)
        named = report.name(report.owner.get(target.node_id or ""))
        done.append(f"told {target.addr} that {owner.addr} owns slot {slot} (it named {named})")
    m = SlotMigration(cluster, slot, owner, target, batch=batch)
    m.open()
    moved = m.move_all()
    m.finish()
    done.append(
        f"finished slot {slot}'s move from {owner.addr} to {target.addr} ({moved} keys were left)"
    )
    return done
