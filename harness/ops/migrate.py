"""Moving a slot between masters in the documented order, step by step
(:class:`SlotMigration`, so a fault can be injected between steps), and the steps
themselves for many slots at once (:mod:`harness.ops.reshard` uses them).

The order is the one of the Redis Cluster specification ("Live resharding") and of
``redis-cli --cluster reshard``: ``SETSLOT IMPORTING`` on the target first (so the
target accepts the ASK-redirected queries the source starts sending), then ``SETSLOT
MIGRATING`` on the source; keys move in batches of ``GETKEYSINSLOT`` + ``MIGRATE ...
KEYS``; then ``SETSLOT NODE`` on the target first (so its ownership and bumped epoch
win), then on the source, then on every other master. On Valkey 8+ ``SETSLOT`` is
replicated: the primary answers once its replicas have it, hence the long timeouts.

A key the target already holds (``BUSYKEY``) is replaced when ``replace=True``;
otherwise, as ``redis-cli`` does, both values are compared (``DEBUG DIGEST-VALUE``) and
the key is replaced only if they are equal, else the migration stops with the keys named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

import redis

from harness.crc16 import SLOTS
from harness.ops.base import Clients, deadline_s, recorded
from harness.ops.slots import MigrationError, SlotReport, inspect_slots
from harness.topology import format_ranges, merge_ranges
from harness.wait import wait_for

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster

#: MIGRATE's own timeout (ms): how long the source waits on the target per batch
MIGRATE_TIMEOUT_MS = 10_000
#: control connections of a migration: SETSLOT waits for replicas on Valkey 8+
COMMAND_TIMEOUT_S = 15.0


class SlotMigration:
    """One slot moved from ``source`` to ``target``: :meth:`open`, :meth:`move_batch`
    until it returns 0 (or :meth:`move_all`), :meth:`finish`. Each step is recorded on
    the cluster's timeline unless ``record=False`` (:func:`migrate_slots` records the
    whole move once)."""

    def __init__(
        self,
        cluster: Cluster,
        slot: int,
        source: Node,
        target: Node,
        *,
        batch: int = 100,
        replace: bool = False,
        record: bool = True,
        clients: Clients | None = None,
    ) -> None:
        if not 0 <= slot < SLOTS:
            raise MigrationError(f"slot {slot} is out of range 0..{SLOTS - 1}")
        if source is target:
            raise MigrationError(f"slot {slot}: source and target are both {source.addr}")
        if batch < 1:
            raise MigrationError(f"batch={batch}: move at least one key at a time")
        self.cluster = cluster
        self.slot = slot
        self.source = source
        self.target = target
        self.batch = batch
        self.replace = replace
        self.record = record
        self.keys_moved = 0
        self.state = "new"  # -> open -> finished
        self._own_clients = clients is None
        #: the masters told of the new owner after the source (found when first needed)
        self.others: list[Node] | None = None
        self.clients = clients or Clients(COMMAND_TIMEOUT_S)

    @property
    def where(self) -> str:
        return f"slot {self.slot} {self.source.addr} -> {self.target.addr}"

    def _fail(self, why: str) -> MigrationError:
        return MigrationError(f"{self.where}: {why}", inspect_slots(self.cluster, self.slot))

    def _run(self, node: Node, *args: object) -> object:
        try:
            return self.clients.run(node, *args)
        except redis.exceptions.ResponseError as exc:
            raise self._fail(f"{node.addr} refused {' '.join(map(str, args[:4]))}: {exc}") from None

    def open(self) -> None:
        """``SETSLOT IMPORTING`` on the target, then ``SETSLOT MIGRATING`` on the source."""
        if self.state != "new":
            raise MigrationError(f"{self.where}: open() on a migration that is {self.state}")
        if self.record:
            with recorded(self.cluster, "migrate-open", self.source.addr, self.where):
                self._open()
        else:
            self._open()

    def _open(self) -> None:
        open_slots(self.cluster, self.clients, self.source, self.target, [self.slot])
        self.state = "open"

    def move_batch(self) -> int:
        """Move up to ``batch`` keys (``GETKEYSINSLOT`` + ``MIGRATE ... KEYS``); return
        how many moved, 0 once the source holds none of the slot."""
        if self.state != "open":
            raise MigrationError(f"{self.where}: move_batch() on a migration that is {self.state}")
        keys = self._run(self.source, "CLUSTER", "GETKEYSINSLOT", self.slot, self.batch)
        assert isinstance(keys, list)
        if not keys:
            return 0
        return self._migrate(keys, replace=self.replace)

    def move_all(self) -> int:
        """Move batches until the slot is empty on the source; return the keys moved."""
        total = 0
        while n := self.move_batch():
            total += n
        return total

    def _migrate(self, keys: list[str], replace: bool) -> int:
        """One ``MIGRATE``; on ``BUSYKEY`` (the target has some of the keys: MIGRATE moved
        the others) the keys left whose values are the same on both sides are replaced,
        which loses nothing, and the migration stops naming those that differ, unless
        ``replace``. Counts what moved into :attr:`keys_moved` as it goes."""
        try:
            self._send(keys, replace)
            self._verify(keys)
            self.keys_moved += len(keys)
            return len(keys)
        except redis.exceptions.ResponseError as exc:
            if "BUSYKEY" not in str(exc) or replace:
                raise self._fail(f"MIGRATE of {len(keys)} keys refused: {exc}") from None
        left = [k for k, n in zip(keys, self._exists(self.source, keys), strict=True) if n]
        moved = len(keys) - len(left)
        differ = self._different(left)
        same = [k for k in left if k not in differ]
        if same:
            self._send(same, replace=True)
            moved += len(same)
        self.keys_moved += moved
        if differ:
            shown = ", ".join(repr(k) for k in differ[:5])
            raise self._fail(
                f"{len(differ)} key(s) exist on both sides with different values ({shown}); "
                "pass replace=True to overwrite the target's"
            )
        return moved

    def _send(self, keys: list[str], replace: bool) -> None:
        t = self.target
        args: list[object] = ["MIGRATE", t.public_host, t.public_port, "", 0, MIGRATE_TIMEOUT_MS]
        if replace:
            args.append("REPLACE")
        sec = self.source.security
        if sec.password is not None:
            args += (
                ["AUTH", sec.password] if sec.user is None else ["AUTH2", sec.user, sec.password]
            )
        self.clients.run(self.source, *args, "KEYS", *keys)

    def _verify(self, keys: list[str]) -> None:
        """MIGRATE said OK: the target must hold every key of the batch (a server or a
        link that acknowledges and drops a batch loses keys silently otherwise). One
        multi-key ``EXISTS`` after ``ASKING``; an importing target answers ``TRYAGAIN``
        when some are missing, and then each key is asked for, to name them."""
        pipe = self.clients(self.target).pipeline(transaction=False)
        pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.execute_command("EXISTS", *keys)  # type: ignore[no-untyped-call]
        held = pipe.execute(raise_on_error=False)[1]
        if held == len(keys):
            return
        pipe = self.clients(self.target).pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
            pipe.execute_command("EXISTS", k)  # type: ignore[no-untyped-call]
        replies = pipe.execute(raise_on_error=False)[1::2]
        missing = [k for k, r in zip(keys, replies, strict=True) if r != 1]
        if missing:
            shown = ", ".join(repr(k) for k in missing[:5])
            more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
            raise self._fail(
                f"MIGRATE acknowledged {len(keys)} keys, but the target holds "
                f"{len(keys) - len(missing)}: missing {shown}{more}"
            )

    def _exists(self, node: Node, keys: list[str]) -> list[int]:
        """1 for each key ``node`` still holds (a migrating source answers ASK for the
        keys it no longer has)."""
        pipe = self.clients(node).pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("EXISTS", k)  # type: ignore[no-untyped-call]
        return [r if isinstance(r, int) else 0 for r in pipe.execute(raise_on_error=False)]

    def _different(self, keys: list[str]) -> list[str]:
        if not keys:
            return []
        try:
            here = self.clients.run(self.source, "DEBUG", "DIGEST-VALUE", *keys)
            there = self._digests(self.target, keys)
        except redis.exceptions.ResponseError as exc:
            raise self._fail(
                f"{len(keys)} key(s) exist on the target; their values cannot be compared "
                f"({exc}): pass replace=True to overwrite them"
            ) from None
        assert isinstance(here, list)
        return [k for k, a, b in zip(keys, here, there, strict=True) if a != b]

    def _digests(self, node: Node, keys: list[str]) -> list[object]:
        pipe = self.clients(node).pipeline(transaction=False)
        pipe.execute_command("ASKING")  # type: ignore[no-untyped-call]
        pipe.execute_command("DEBUG", "DIGEST-VALUE", *keys)  # type: ignore[no-untyped-call]
        got = pipe.execute()[1]
        assert isinstance(got, list)
        return got

    def finish(self, wait: bool = True, timeout: float | None = None) -> None:
        """``SETSLOT NODE target`` on the target, then the source, then every other live
        master; with ``wait``, until every live node names the target and none has the
        slot open. Refused while the source still holds keys of the slot."""
        if self.state != "open":
            raise MigrationError(f"{self.where}: finish() on a migration that is {self.state}")
        if self.record:
            with recorded(self.cluster, "migrate-finish", self.source.addr, self.where) as step:
                self._finish(wait, timeout)
                step.whole = wait
                step.result = f"{self.where}: {self.keys_moved} keys moved"
        else:
            self._finish(wait, timeout)

    def _finish(self, wait: bool, timeout: float | None) -> None:
        if self.others is None:
            self.others = other_masters(self.cluster, (self.source, self.target))
        assign_slots(self.cluster, self.clients, self.source, self.target, [self.slot], self.others)
        self.state = "finished"
        if wait:
            wait_settled(self.cluster, {self.slot: self.target}, timeout)
        if self._own_clients:
            self.clients.close()


def send_all(
    cluster: Cluster,
    clients: Clients,
    node: Node,
    commands: Sequence[Sequence[object]],
    slots: Sequence[int],
) -> list[object]:
    r"""Send one command per slot to ``node`` pipelined (few round trips, and few
    nodes.conf saves on the server for a run of ``SETSLOT``\ s); a refusal raises a
    :class:`MigrationError` naming the first refused slot, with the refused slots' reports."""
    replies = clients.pipelined(node, commands)
    bad = [(s, r) for s, r in zip(slots, replies, strict=True) if isinstance(r, Exception)]
    if bad:
        what = " ".join(map(str, commands[0][:3]))
        raise MigrationError(
            f"{node.addr} refused {what} for {len(bad)} slot(s), first slot {bad[0][0]}: {bad[0][1]}",
            inspect_slots(cluster, [s for s, _ in bad]),
        )
    return list(replies)


def open_slots(
    cluster: Cluster, clients: Clients, source: Node, target: Node, slots: Sequence[int]
) -> None:
    """``SETSLOT IMPORTING`` on the target for every slot, then ``MIGRATING`` on the
    source; nothing is sent unless the source owns every slot by its own view (a target
    left importing a slot the source cannot migrate would be a mess of the harness's)."""
    owners = cluster.view(source, with_shards=False).slot_owners()
    foreign = [s for s in slots if owners[s] != source.node_id]
    if foreign:
        raise MigrationError(
            f"{source.addr} does not own {len(foreign)} of the slots to move, first slot "
            f"{foreign[0]}: nothing was changed",
            inspect_slots(cluster, foreign[:8]),
        )
    send_all(
        cluster, clients, target,
        [("CLUSTER", "SETSLOT", s, "IMPORTING", source.node_id) for s in slots], slots,
    )  # fmt: skip
    send_all(
        cluster, clients, source,
        [("CLUSTER", "SETSLOT", s, "MIGRATING", target.node_id) for s in slots], slots,
    )  # fmt: skip


def assign_slots(
    cluster: Cluster,
    clients: Clients,
    source: Node,
    target: Node,
    slots: Sequence[int],
    others: Sequence[Node],
) -> None:
    """``SETSLOT NODE target`` on the target, then the source, then the ``others``
    masters (one that does not answer learns it from the target's bumped epoch).
    Refused while the source still holds keys of a slot."""
    counts = send_all(
        cluster, clients, source, [("CLUSTER", "COUNTKEYSINSLOT", s) for s in slots], slots
    )
    left = [s for s, n in zip(slots, counts, strict=True) if n != 0]
    if left:
        raise MigrationError(
            f"{source.addr} still holds keys of {len(left)} slot(s) it is migrating: "
            "move them before assigning the slot",
            inspect_slots(cluster, left),
        )
    assign = [("CLUSTER", "SETSLOT", s, "NODE", target.node_id) for s in slots]
    send_all(cluster, clients, target, assign, slots)
    try:
        send_all(cluster, clients, source, assign, slots)
    except (MigrationError, redis.exceptions.ConnectionError):
        # The source may have learned the new owner from the target's gossip first (on
        # Valkey 8+ its own SETSLOT waits for its replicas), and if that was its last
        # slot it is already the target's replica (Valkey then also drops the connection
        # of the blocked SETSLOT): then nothing is left to do there.
        owners = cluster.view(source, with_shards=False).slot_owners()
        if any(owners[s] != target.node_id for s in slots):
            raise
    for node in others:
        with suppress(MigrationError, redis.exceptions.RedisError, OSError):
            send_all(cluster, clients, node, assign, slots)


def other_masters(cluster: Cluster, but: Sequence[Node]) -> list[Node]:
    """Live masters (as each answers about itself, fresh) other than ``but``."""
    out = []
    for n in cluster.live_nodes():
        if n in but:
            continue
        try:
            me = cluster.view(n, with_shards=False).myself
        except (redis.exceptions.RedisError, OSError):
            continue
        if me is not None and me.is_master:
            out.append(n)
    return out


def wait_settled(
    cluster: Cluster, owners: Mapping[int, Node], timeout: float | None = None
) -> None:
    """Until every live node names the expected owner of each slot (``owners``: slot ->
    node), none has it open and no key of it is hidden; on timeout a
    :class:`MigrationError` with the reports of the slots still unsettled."""
    slots = sorted(owners)
    wanted = set(slots)
    last: list[SlotReport] = []

    def settled() -> tuple[bool, str]:
        # the maps first (cheap); the keys on every node only once every map agrees
        for v in cluster.snapshot(cluster.live_nodes(), with_shards=False).views:
            seen = v.slot_owners()
            wrong = [s for s in slots if seen[s] != owners[s].node_id]
            me = v.myself
            marked = {s for s, _ in (*me.migrating, *me.importing)} if me else set()
            if wrong or marked & wanted:
                return False, f"{v.observer}: {len(wrong)} slot(s) not yet moved, or still open"
        reports = inspect_slots(cluster, slots)
        bad = [r for r in reports if not r.settled(owners[r.slot].node_id or "")]
        last[:] = bad
        return not bad, f"{len(bad)} slot(s) unsettled" + (f": {bad[0].describe()}" if bad else "")

    where = ", ".join(sorted({n.addr for n in owners.values()}))
    try:
        wait_for(settled, deadline_s(cluster, timeout), f"slots owned by {where} everywhere")
    except Exception as exc:
        raise MigrationError(
            f"slots {format_ranges(merge_ranges(slots))} did not settle on {where}: {exc}",
            last,
        ) from None
