"""``redis-cli --cluster check`` output as a verdict: a pure function of the text.

The tool's check is a second opinion written by the server's authors: it asks every
node for its own slots (coverage), compares the nodes' views (agreement) and lists
``MIGRATING``/``IMPORTING`` markers (open slots). Its output is text for people; the
markers it prints are stable across Redis 5 to Valkey 8 (colours aside, which depend on
``TERM``), so they are parsed here and nothing else is inferred::

    [OK] All nodes agree about slots configuration.   | [ERR] Nodes don't agree about configuration!
    [WARNING] Node 10.0.0.2:6379 has slots in migrating state 5,6.
    [WARNING] The following slots are open: 5,6.
    [OK] All 16384 slots covered.                      | [ERR] Not all 16384 slots are covered by nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.topology import SlotRange, format_ranges, merge_ranges

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SLOTS = re.compile(r"\d+(?:,\d+)*")
_STATE = re.compile(r"^\[WARNING\] Node (\S+) has slots in (migrating|importing) state (.+?)\.?$")
_OPEN = re.compile(r"^\[WARNING\] The following slots are open: (.+?)\.?$")
_OWNERS = re.compile(r"^\[WARNING\] Slot (\d+) has (\d+) owners:")
_KEYS = re.compile(r"^\[OK\] (\d+) keys in (\d+) (?:masters|primaries)\.")
_ENTRY = re.compile(r"^>>> Performing Cluster Check \(using node (\S+)\)")
_NODE = re.compile(r"^([MS]): ([0-9a-f]{40}) (\S+)")
_NODE_SLOTS = re.compile(r"^slots:(\S*) \((\d+) slots\)")
_REPLICATES = re.compile(r"^replicates ([0-9a-f]{40})")
_REFUSED = re.compile(r"^Could not connect to \S+ at (\S+?):? ")
_OUTSIDE = ("Could not connect", "*** ")  # lines that go to stderr, before the check too
_RANGE = re.compile(r"\[(\d+)(?:-(\d+))?\]|(\d+)")

COVERED = "[OK] All 16384 slots covered."
NOT_COVERED = "[ERR] Not all 16384 slots are covered by nodes."
AGREE = "[OK] All nodes agree about slots configuration."
DISAGREE = "[ERR] Nodes don't agree about configuration!"


@dataclass(frozen=True)
class CheckedNode:
    """One ``M:``/``S:`` entry of the check: a node as the tool saw it."""

    role: str  # "master" or "replica"
    node_id: str
    addr: str
    slots: tuple[SlotRange, ...] = ()
    master_id: str | None = None


@dataclass(frozen=True)
class CheckVerdict:
    """What ``--cluster check`` said. ``covered``/``agree`` are None when the output does
    not get that far (the tool could not reach the cluster)."""

    covered: bool | None
    agree: bool | None
    open_slots: frozenset[int]
    migrating: tuple[tuple[str, tuple[int, ...]], ...]  # (node address, slots)
    importing: tuple[tuple[str, tuple[int, ...]], ...]
    multiple_owners: tuple[int, ...]  # with --cluster-search-multiple-owners
    messages: tuple[str, ...]  # every [OK]/[ERR]/[WARNING] line and connection error, in order
    nodes: tuple[CheckedNode, ...] = ()
    keys: int | None = None  # "[OK] N keys in M masters."
    entry: str | None = None  # the node the tool asked first

    @property
    def unreachable(self) -> tuple[str, ...]:
        """Addresses the tool could not connect to ("Could not connect to Redis at ...")."""
        return tuple(m.group(1) for msg in self.messages if (m := _REFUSED.match(msg)))

    @property
    def complete(self) -> bool:
        """The check ran to its end (it printed a coverage verdict)."""
        return self.covered is not None

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(m for m in self.messages if not m.startswith(("[OK]", "[WARNING]")))

    @property
    def ok(self) -> bool:
        """Covered, agreed, nothing open, no other error: what the tool calls healthy."""
        return (
            self.covered is True
            and self.agree is True
            and not self.open_slots
            and not self.multiple_owners
            and not self.errors
        )

    def __bool__(self) -> bool:
        return self.ok

    def masters(self) -> tuple[CheckedNode, ...]:
        return tuple(n for n in self.nodes if n.role == "master")

    def describe(self) -> str:
        """One line: what is wrong, or that nothing is."""
        parts = []
        if not self.complete:
            parts.append("check incomplete")
        if self.covered is False:
            parts.append("slots not covered")
        if self.agree is False:
            parts.append("nodes disagree")
        if self.open_slots:
            parts.append(f"open slots {format_ranges(merge_ranges(sorted(self.open_slots)))}")
        if self.multiple_owners:
            parts.append(f"slots with several owners {list(self.multiple_owners)}")
        parts += [e for e in self.errors if e not in (NOT_COVERED, DISAGREE)]
        return "; ".join(parts) if parts else "ok: all slots covered, nodes agree, none open"


def strip_colours(text: str) -> str:
    return _ANSI.sub("", text)


def _slot_list(text: str) -> tuple[int, ...]:
    m = _SLOTS.match(text.strip())
    return tuple(int(s) for s in m.group(0).split(",")) if m else ()


def _ranges(text: str) -> tuple[SlotRange, ...]:
    out = []
    for m in _RANGE.finditer(text):
        lo = int(m.group(1) or m.group(3))
        out.append((lo, int(m.group(2) or lo)))
    return tuple(out)


def parse_check(output: str) -> CheckVerdict:
    """The verdict of ``--cluster check`` (or of the check that ``create``, ``fix``,
    ``reshard`` and ``rebalance`` print first), from its combined stdout and stderr.
    When a command prints several checks, the last one counts."""
    text = strip_colours(output)
    start = text.rfind(">>> Performing Cluster Check")
    before, text = (text[:start], text[start:]) if start >= 0 else ("", text)
    # the summary above a check ("[OK] 12 keys in 3 masters.") belongs to it; the
    # connection errors of anything before it too (they go to stderr, in any order)
    counted = [m for ln in before.splitlines() if (m := _KEYS.match(ln.strip()))]
    keys = int(counted[-1].group(1)) if counted else None
    refused = [ln.strip() for ln in before.splitlines() if ln.startswith(_OUTSIDE)]
    covered = agree = None
    open_slots: set[int] = set()
    migrating: list[tuple[str, tuple[int, ...]]] = []
    importing: list[tuple[str, tuple[int, ...]]] = []
    owners: list[int] = []
    messages: list[str] = refused
    nodes: list[CheckedNode] = []
    entry = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("[OK]", "[ERR]", "[WARNING]", *_OUTSIDE)):
            messages.append(line)
        if line == COVERED:
            covered = True
        elif line == NOT_COVERED:
            covered = False
        elif line == AGREE:
            agree = True
        elif line == DISAGREE:
            agree = False
        elif m := _STATE.match(line):
            slots = _slot_list(m.group(3))
            (migrating if m.group(2) == "migrating" else importing).append((m.group(1), slots))
        elif m := _OPEN.match(line):
            open_slots.update(_slot_list(m.group(1)))
        elif m := _OWNERS.match(line):
            owners.append(int(m.group(1)))
        elif m := _KEYS.match(line):
            keys = int(m.group(1))
        elif m := _ENTRY.match(line):
            entry = m.group(1)
        elif m := _NODE.match(line):
            role = "master" if m.group(1) == "M" else "replica"
            nodes.append(CheckedNode(role, m.group(2), m.group(3)))
        elif nodes and (m := _NODE_SLOTS.match(line)):
            n = nodes[-1]
            nodes[-1] = CheckedNode(n.role, n.node_id, n.addr, _ranges(m.group(1)), n.master_id)
        elif nodes and (m := _REPLICATES.match(line)):
            n = nodes[-1]
            nodes[-1] = CheckedNode(n.role, n.node_id, n.addr, n.slots, m.group(1))
    for _, slots in migrating + importing:  # the tool lists these as open too
        open_slots.update(slots)
    return CheckVerdict(
        covered,
        agree,
        frozenset(open_slots),
        tuple(migrating),
        tuple(importing),
        tuple(owners),
        tuple(messages),
        tuple(nodes),
        keys,
        entry,
    )
