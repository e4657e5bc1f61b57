r"""Moving many slots: :func:`migrate_slots` (source to target, each slot in the
documented order of :mod:`harness.ops.migrate`) and :func:`rebalance` (an even split over
the current masters, new empty ones included).

Slots are handled in chunks: the ``SETSLOT``\ s of a chunk go to each node in one
pipeline, so a rebalance of thousands of slots costs a few round trips and nodes.conf
saves per chunk instead of several per slot; the order per slot is kept (every
``IMPORTING`` is answered before any ``MIGRATING`` of the chunk is sent, and so on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from harness.crc16 import SLOTS
from harness.ops.base import Clients, recorded
from harness.ops.migrate import (
    COMMAND_TIMEOUT_S,
    SlotMigration,
    assign_slots,
    open_slots,
    other_masters,
    send_all,
    wait_settled,
)
from harness.topology import format_ranges, merge_ranges

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster

#: slots opened and assigned together
CHUNK = 256


def migrate_slots(
    cluster: Cluster,
    source: Node,
    target: Node,
    slots: Sequence[int] | int,
    *,
    batch: int = 100,
    replace: bool = False,
    timeout: float | None = None,
    wait: bool = True,
) -> int:
    """Move ``slots`` from ``source`` to ``target``, each in the whole documented order,
    then (``wait``) until every live node names the target and none has a slot open;
    return the keys moved. Recorded once, as ``migrate-slots``."""
    wanted = [slots] if isinstance(slots, int) else list(slots)
    detail = f"slots {format_ranges(merge_ranges(wanted))} {source.addr} -> {target.addr}"
    with (
        recorded(cluster, "migrate-slots", source.addr, detail) as step,
        Clients(COMMAND_TIMEOUT_S) as clients,
    ):
        moved = 0
        others = other_masters(cluster, (source, target))
        for at in range(0, len(wanted), CHUNK):
            chunk = wanted[at : at + CHUNK]
            open_slots(cluster, clients, source, target, chunk)
            count = [("CLUSTER", "COUNTKEYSINSLOT", s) for s in chunk]
            held = send_all(cluster, clients, source, count, chunk)
            for slot, n in zip(chunk, held, strict=True):
                if n == 0:
                    continue
                m = SlotMigration(
                    cluster, slot, source, target, batch=batch, replace=replace,
                    record=False, clients=clients,
                )  # fmt: skip
                m.state = "open"  # opened with its chunk
                moved += m.move_all()
            assign_slots(cluster, clients, source, target, chunk, others)
        if wait:
            wait_settled(cluster, dict.fromkeys(wanted, target), timeout)
        step.whole = wait
        step.result = f"{len(wanted)} slots, {moved} keys moved to {target.addr}"
    return moved


def plan_rebalance(owned: Mapping[str, Sequence[int]]) -> list[tuple[str, str, list[int]]]:
    """Moves (source id, target id, slots) that leave every master of ``owned`` (id ->
    its slots, an empty list for a new master) with an even share: 16384 // n each, the
    remainder one more for the masters that hold most now. Donors give their highest
    slots, so ranges stay contiguous where they can. Pure."""
    if not owned:
        return []
    n = len(owned)
    base, extra = divmod(SLOTS, n)
    order = sorted(owned, key=lambda i: (-len(owned[i]), i))
    want = {nid: base + (1 if rank < extra else 0) for rank, nid in enumerate(order)}
    give = {nid: sorted(owned[nid])[want[nid] :] for nid in order if len(owned[nid]) > want[nid]}
    need = {nid: want[nid] - len(owned[nid]) for nid in order if len(owned[nid]) < want[nid]}
    moves: list[tuple[str, str, list[int]]] = []
    for dst, count in need.items():
        while count:
            src = next(s for s, spare in give.items() if spare)
            take = give[src][:count]
            give[src] = give[src][count:]
            moves.append((src, dst, take))
            count -= len(take)
    return moves


def rebalance(
    cluster: Cluster, *, batch: int = 100, replace: bool = False, timeout: float | None = None
) -> int:
    """Split the slots evenly over the current masters (new empty ones included: every
    live master the first live node knows); return the keys moved. Waits once, at the
    end, until every live node agrees on the new map."""
    view = cluster.view(cluster.live_nodes()[0], with_shards=False)
    members = {n.node_id for n in cluster.nodes}
    owned = {
        e.node_id: [s for lo, hi in e.slots for s in range(lo, hi + 1)]
        for e in view.nodes
        if e.is_master and not e.failed and not e.in_handshake and e.node_id in members
    }
    moves = [(cluster.node_by_id(a), cluster.node_by_id(b), s) for a, b, s in plan_rebalance(owned)]
    with recorded(cluster, "rebalance", "cluster", f"{len(owned)} masters") as step:
        moved = sum(
            migrate_slots(
                cluster, src, dst, slots, batch=batch, replace=replace, timeout=timeout,
                wait=False,
            )
            for src, dst, slots in moves
        )  # fmt: skip
        wait_settled(cluster, {s: dst for _, dst, slots in moves for s in slots}, timeout)
        step.result = (
            f"{sum(len(s) for _, _, s in moves)} slots in {len(moves)} moves, {moved} keys"
        )
    return moved
