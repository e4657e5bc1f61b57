"""One slot migration driven with the raw cluster commands, in the documented order, for
the conformance suites that check what clients see while a slot moves (the library's
own operations are in :mod:`harness.ops`; a conformance test spells the commands out so
that what it checks is the server's behaviour, not the harness's).

Order (``CLUSTER SETSLOT`` page, "Redis Cluster live resharding explained"): ``IMPORTING``
on the target first, then ``MIGRATING`` on the source (so the target accepts ``ASKING``
before the source sends clients to it); ``MIGRATE`` the keys; ``NODE <target>`` on the
target, the source, then every other master. A migration that is not finished is rolled
back on exit, so a test leaves the cluster's layout as it found it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness import Cluster, key_for_slot, key_slot
from harness.backends import Node
from harness.testing import ErrorReply, Reply, raw_commands, wait_for

MIGRATE_TIMEOUT_MS = 5000


def slot_keys(slot: int, names: str, prefix: str = "mig:") -> list[str]:
    """One key per letter of ``names``, all in ``slot`` (one hash tag)."""
    tag = key_for_slot(slot, prefix=prefix)
    keys = [f"{{{tag}}}:{n}" for n in names]
    assert all(key_slot(k) == slot for k in keys), f"harness bug: {keys} not all in slot {slot}"
    return keys


def reply(node: Node, *cmd: object, asking: bool = False) -> Reply:
    """The raw reply of one command on a fresh connection (after ``ASKING`` if asked)."""
    before = [("ASKING",)] if asking else []
    *setup, got = raw_commands(node, *before, cmd)
    for r in setup:
        assert not isinstance(r, ErrorReply), f"{node.addr}: ASKING failed: {r.text}"
    return got


def text(r: Reply) -> str:
    """An error reply's text, or the reply shown as a value (for messages)."""
    return r.text if isinstance(r, ErrorReply) else f"the value {r!r}"


def keys_in_slot(node: Node, slot: int, count: int) -> list[str]:
    """Up to ``count`` keys of ``slot`` that ``node`` holds (``CLUSTER GETKEYSINSLOT``)."""
    got = node.call("CLUSTER", "GETKEYSINSLOT", slot, count)
    assert isinstance(got, list), f"{node.addr}: CLUSTER GETKEYSINSLOT replied {got!r}"
    return [str(k) for k in got]


def markers(cluster: Cluster, node: Node) -> tuple[tuple[tuple[int, str], ...], ...]:
    """(migrating, importing) on ``node``'s own ``CLUSTER NODES`` line."""
    me = cluster.view(node, with_shards=False).myself
    assert me is not None, f"{node.addr}: no myself line in CLUSTER NODES"
    return me.migrating, me.importing


def agree_on_owner(cluster: Cluster, slot: int, owner: Node) -> None:
    """Wait until every live node redirects ``slot`` to ``owner`` and ``owner`` serves it:
    the moment the move is complete for every client, whichever node it asks."""
    key = slot_keys(slot, "o")[0]

    def probe() -> tuple[bool, str]:
        wrong = []
        for n in cluster.live_nodes():
            got = reply(n, "GET", key)
            want = f"MOVED {slot} {owner.public_addr}"
            if n is owner:
                if isinstance(got, ErrorReply):
                    wrong.append(f"{n.addr} (the owner): {got.text}")
            elif not (isinstance(got, ErrorReply) and got.text == want):
                wrong.append(f"{n.addr}: {text(got)}")
        return not wrong, "; ".join(wrong)

    wait_for(probe, cluster.recovery_s(), f"every node routing slot {slot} to {owner.addr}")


@dataclass
class Migration:
    """Slot ``slot`` moving from ``source`` to ``target``; open until finished or rolled
    back."""

    cluster: Cluster
    slot: int
    source: Node
    target: Node
    moved: list[str] = field(default_factory=list)
    state: str = "new"

    def _setslot(self, node: Node, *args: object) -> None:
        node.call("CLUSTER", "SETSLOT", self.slot, *args)
        # recorded once done: a step recorded ahead is shown as a fault being injected
        self.cluster.record("setslot", node.addr, f"{self.slot} {' '.join(map(str, args))}")

    def open(self) -> None:
        self._setslot(self.target, "IMPORTING", self.source.node_id)
        self._setslot(self.source, "MIGRATING", self.target.node_id)
        self.state = "open"

    def move(self, *keys: str) -> None:
        """``MIGRATE`` ``keys`` (all of them: each must exist) from source to target."""
        _migrate(self.cluster, self.source, self.target, list(keys))
        self.moved += keys

    def move_all(self) -> None:
        """Move every key left in the slot on the source."""
        while keys := keys_in_slot(self.source, self.slot, 100):
            self.move(*keys)

    def finish(self) -> None:
        """``NODE <target>`` on the target, the source, then every other master; wait
        until every node routes the slot to the target."""
        self.move_all()
        others = [m for m in self.cluster.masters() if m not in (self.source, self.target)]
        for n in [self.target, self.source, *others]:
            self._setslot(n, "NODE", self.target.node_id)
        self.state = "finished"
        agree_on_owner(self.cluster, self.slot, self.target)

    def roll_back(self) -> None:
        """Undo an open migration: the source forgets it first (so it accepts the keys
        again), the keys come back while the target still imports (``MIGRATE`` works on a
        node importing the slot), then the target forgets it."""
        self._setslot(self.source, "STABLE")
        on_target = keys_in_slot(self.target, self.slot, 1000)
        if on_target:
            _migrate(self.cluster, self.target, self.source, on_target)
        self._setslot(self.target, "STABLE")
        self.state = "rolled back"


@contextmanager
def migration(cluster: Cluster, slot: int, source: Node, target: Node) -> Iterator[Migration]:
    """An open migration of ``slot``; rolled back on exit unless finished."""
    m = Migration(cluster, slot, source, target)
    m.open()
    try:
        yield m
    finally:
        if m.state == "open":
            m.roll_back()


def _migrate(cluster: Cluster, source: Node, target: Node, keys: Sequence[str]) -> None:
    """``MIGRATE`` to the address the target announces, with the cluster's password."""
    auth: tuple[str, ...] = ()
    sec = cluster.security
    if sec.password is not None:
        auth = ("AUTH", sec.password) if sec.user is None else ("AUTH2", sec.user, sec.password)
    got = source.call(
        "MIGRATE",
        target.public_host,
        target.public_port,
        "",
        0,
        MIGRATE_TIMEOUT_MS,
        *auth,
        "KEYS",
        *keys,
        timeout=MIGRATE_TIMEOUT_MS / 1000 + 2,
    )
    assert got == "OK", f"MIGRATE {keys} from {source.addr} to {target.addr}: {got!r}"
    cluster.record("migrate", source.addr, f"{len(keys)} key(s) to {target.addr}")
