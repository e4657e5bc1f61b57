"""Cluster topology as nodes report it: parsers for ``CLUSTER NODES``, ``CLUSTER SHARDS``
and ``CLUSTER INFO``, and an immutable snapshot the checkers judge.

Parsing is separate from fetching so the checkers stay pure and unit-testable on
recorded replies from any server version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness import slotmap
from harness.crc16 import SLOTS

SlotRange = tuple[int, int]  # inclusive bounds, as CLUSTER NODES prints them


class ParseError(ValueError):
    """A reply that does not have the documented shape."""


@dataclass(frozen=True)
class NodeEntry:
    """One line of ``CLUSTER NODES``: a node as seen by the observer."""

    node_id: str
    host: str
    port: int
    bus_port: int
    hostname: str
    flags: frozenset[str]
    master_id: str | None
    ping_sent: int
    pong_recv: int
    config_epoch: int
    link_state: str
    slots: tuple[SlotRange, ...] = ()
    migrating: tuple[tuple[int, str], ...] = ()
    importing: tuple[tuple[int, str], ...] = ()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def is_replica(self) -> bool:
        return "slave" in self.flags or "replica" in self.flags

    @property
    def is_myself(self) -> bool:
        return "myself" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags

    @property
    def suspected(self) -> bool:
        return "fail?" in self.flags

    @property
    def in_handshake(self) -> bool:
        return "handshake" in self.flags or "noaddr" in self.flags

    @property
    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)


def _parse_address(text: str) -> tuple[str, int, int, str]:
    # ip:port@cport[,hostname]  (hostname since 7.0; 6.2 has no hostname part)
    addr, _, hostname = text.partition(",")
    hostport, _, bus = addr.partition("@")
    host, _, port = hostport.rpartition(":")
    try:
        return host, int(port or 0), int(bus.split(",")[0] or 0) if bus else 0, hostname
    except ValueError as exc:
        raise ParseError(f"bad node address {text!r}") from exc


def parse_cluster_nodes(text: str) -> list[NodeEntry]:
    """Parse a ``CLUSTER NODES`` reply (Redis 3.0 … 8.x, Valkey)."""
    nodes: list[NodeEntry] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) < 8:
            raise ParseError(f"CLUSTER NODES line has {len(parts)} fields, expected >= 8: {line!r}")
        node_id, address, flags, master, ping, pong, epoch, link = parts[:8]
        host, port, bus_port, hostname = _parse_address(address)
        slots: list[SlotRange] = []
        migrating: list[tuple[int, str]] = []
        importing: list[tuple[int, str]] = []
        for item in parts[8:]:
            if item.startswith("["):
                body = item.strip("[]")
                try:
                    if "->-" in body:
                        s, other = body.split("->-")
                        migrating.append((int(s), other))
                    elif "-<-" in body:
                        s, other = body.split("-<-")
                        importing.append((int(s), other))
                except ValueError as exc:
                    raise ParseError(f"bad migration entry {item!r} in line {line!r}") from exc
                continue
            lo, _, hi = item.partition("-")
            try:
                slots.append((int(lo), int(hi or lo)))
            except ValueError as exc:
                raise ParseError(f"bad slot range {item!r} in line {line!r}") from exc
        try:
            nodes.append(
                NodeEntry(
                    node_id=node_id,
                    host=host,
                    port=port,
                    bus_port=bus_port,
                    hostname=hostname,
                    flags=frozenset(f for f in flags.split(",") if f and f != "noflags"),
                    master_id=None if master == "-" else master,
                    ping_sent=int(ping),
                    pong_recv=int(pong),
                    config_epoch=int(epoch),
                    link_state=link,
                    slots=tuple(slots),
                    migrating=tuple(migrating),
                    importing=tuple(importing),
                )
            )
        except ValueError as exc:
            raise ParseError(f"bad numeric field in CLUSTER NODES line {line!r}") from exc
    return nodes


def parse_info(text: str) -> dict[str, str]:
    """Parse ``INFO`` / ``CLUSTER INFO`` text into a flat field → value mapping."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        k, _, v = line.partition(":")
        out[k] = v
    return out


def _pairs(value: Any) -> dict[str, Any]:
    """RESP2 returns maps as flat [k, v, k, v] lists; RESP3 as dicts. Accept both."""
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        if len(value) % 2:
            raise ParseError(f"odd-length map reply: {value!r}")
        return {_text(value[i]): value[i + 1] for i in range(0, len(value), 2)}
    raise ParseError(f"expected a map reply, got {value!r}")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ShardNode:
    node_id: str
    endpoint: str
    port: int
    role: str
    health: str
    replication_offset: int


@dataclass(frozen=True)
class Shard:
    slots: tuple[SlotRange, ...]
    nodes: tuple[ShardNode, ...]

    @property
    def master(self) -> ShardNode | None:
        for n in self.nodes:
            if n.role in ("master", "primary"):
                return n
        return None


def parse_cluster_shards(reply: Sequence[Any]) -> list[Shard]:
    """Parse a ``CLUSTER SHARDS`` reply (Redis ≥ 7.0, Valkey); RESP2 or RESP3 shaped."""
    shards: list[Shard] = []
    for raw in reply:
        fields = _pairs(raw)
        flat = [int(x) for x in fields.get("slots", [])]
        if len(flat) % 2:
            raise ParseError(f"odd number of slot bounds in CLUSTER SHARDS: {flat!r}")
        ranges = tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))
        nodes = []
        for rn in fields.get("nodes", []):
            n = _pairs(rn)
            port = n.get("port", n.get("tls-port", 0))
            nodes.append(
                ShardNode(
                    node_id=_text(n.get("id", "")),
                    endpoint=_text(n.get("endpoint", n.get("ip", ""))),
                    port=int(port),
                    role=_text(n.get("role", "")),
                    health=_text(n.get("health", "")),
                    replication_offset=int(n.get("replication-offset", 0)),
                )
            )
        shards.append(Shard(slots=ranges, nodes=tuple(nodes)))
    return shards


def merge_ranges(slots: Iterable[int]) -> list[SlotRange]:
    """Compress slot numbers into sorted inclusive ranges (for readable messages)."""
    out: list[SlotRange] = []
    for s in sorted(set(slots)):
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def format_ranges(ranges: Iterable[SlotRange], limit: int = 6) -> str:
    items = [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in ranges]
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ",".join(items[:limit]) + more


@dataclass(frozen=True)
class NodeView:
    """What one node reported about the cluster at one moment."""

    observer: str  # "host:port" the harness asked
    nodes: tuple[NodeEntry, ...]
    info: Mapping[str, str] = field(default_factory=dict)
    shards: tuple[Shard, ...] | None = None
    #: ``INFO replication`` of the observer, when it was asked for (readiness polls)
    replication: Mapping[str, str] | None = None

    @property
    def myself(self) -> NodeEntry | None:
        for n in self.nodes:
            if n.is_myself:
                return n
        return None

    def by_id(self) -> dict[str, NodeEntry]:
        return {n.node_id: n for n in self.nodes}

    def slot_owners(self) -> list[str | None]:
        """Owner node id of every slot (None where unassigned)."""
        owners: list[str | None] = [None] * SLOTS
        for lo, hi, who in self.owner_ranges:
            owners[lo : hi + 1] = [who] * (hi - lo + 1)
        return owners

    @cached_property
    def owner_ranges(self) -> tuple[slotmap.OwnerRange, ...]:
        """The map as sorted (first, last, owner id) ranges, adjacent ranges of one owner
        merged: two views agree on the map exactly when these are equal, however each
        node splits its lines. Out-of-range bounds are clamped, and where claims overlap
        the one listed last wins, as in :meth:`slot_owners`."""
        return slotmap.owner_ranges([(lo, hi, n.node_id) for n in self.nodes for lo, hi in n.slots])

    def slot_map(self) -> tuple[tuple[int, int, str], ...]:
        """Sorted (first, last, owner id) triples: a comparable summary of the map."""
        return tuple(sorted((lo, hi, n.node_id) for n in self.nodes for lo, hi in n.slots))


@dataclass(frozen=True)
class Snapshot:
    """Views of every node the harness asked, plus the ones it could not reach."""

    views: tuple[NodeView, ...]
    unreachable: Mapping[str, str] = field(default_factory=dict)  # addr -> error

    def view(self, addr: str) -> NodeView | None:
        for v in self.views:
            if v.observer == addr:
                return v
        return None

    def describe(self) -> str:
        """Short human summary of the map as the first reachable node sees it."""
        if not self.views:
            return "no node reachable: " + "; ".join(
                f"{a}: {e}" for a, e in self.unreachable.items()
            )
        lines = []
        for v in self.views:
            state = v.info.get("cluster_state", "?")
            lines.append(
                f"{v.observer} state={state} epoch={v.info.get('cluster_current_epoch', '?')}"
            )
        ref = self.views[0]
        for n in sorted(ref.nodes, key=lambda n: (n.master_id or n.node_id, n.is_replica)):
            role = "master" if n.is_master else "replica" if n.is_replica else "node"
            extra = f" of {n.master_id[:8]}" if n.master_id else ""
            flags = ",".join(sorted(n.flags - {"master", "slave", "myself"}))
            lines.append(
                f"  {n.node_id[:8]} {n.addr} {role}{extra} epoch={n.config_epoch}"
                f" slots={format_ranges(n.slots) or '-'}{' [' + flags + ']' if flags else ''}"
            )
        for addr, err in self.unreachable.items():
            lines.append(f"{addr} unreachable: {err}")
        return "\n".join(lines)
