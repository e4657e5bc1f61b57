"""Conformance: commands that take several keys. A node serves such a command only when
all its keys hash to one slot; keys of different slots are refused with ``-CROSSSLOT Keys
in request don't hash to the same slot``, even when both slots are served by the same
master (the rule is the slot, not the node: a slot may move on its own at any time, and
code that worked by the accident of two slots sharing a master would break then), and the
refused command changes nothing. Keys that share a hash tag share a slot, so the same
command on tagged keys succeeds.

Every family with multi-key commands is checked, each command three ways: one key in
another slot of the same master, one key in a slot of another master (sent to both
masters, each owning some of the keys: neither can serve it), and all keys under one hash
tag. Each key position takes its turn as the odd one (a destination as well as a source),
and the odd key holds a value of the same type, so a server that ran the command would
succeed rather than fail for another reason. Commands the server lacks (``COMMAND INFO``
answers nil: ``SINTERCARD`` before 7.0) are skipped by name.

Source: Redis Cluster specification, "Implemented subset" (multi-key operations "for
cases where all of the keys involved in the operation hash to the same slot"),
"Redirection and resharding" / "Multi-keys operations", and "Hash tags"; the "CROSSSLOT
error" page (the reply text). Same slot, not same node: the maintainers in
redis/redis#3682 and redis/redis#5118.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pytest

from harness import Cluster, key_for_slot, key_slot
from harness.backends import Node
from harness.plugin.state import HarnessState
from harness.security import HARNESS_COMMANDS
from harness.testing import ErrorReply, Reply, raw_commands

# these tests write keys under the run's prefix only, and delete them: they share a cluster
pytestmark = pytest.mark.shares_cluster

CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
RULE = "keys of different slots MUST be refused with CROSSSLOT, even on one master"

Kind = Literal["string", "set", "zset", "list", "stream", "hll", "geo"]
PALERMO = (13.361389, 38.115556)


def _create(kind: Kind, key: str, i: int) -> tuple[object, ...]:
    """The command that gives ``key`` (the ``i``-th of its command) a value of ``kind``."""
    return {
        "string": ("SET", key, f"v{i}"),
        "set": ("SADD", key, "m", f"s{i}"),
        "zset": ("ZADD", key, i + 1, f"z{i}", 10, "m"),
        "list": ("RPUSH", key, f"l{i}"),
        "stream": ("XADD", key, "1-0", "f", f"v{i}"),
        "hll": ("PFADD", key, f"h{i}"),
        "geo": ("GEOADD", key, *PALERMO, "Palermo"),
    }[kind]


@dataclass(frozen=True)
class Case:
    """One multi-key command: the values its keys hold before, the command on given keys,
    and its reply when all keys are in one slot (given the keys, as the server sends them)."""

    command: str
    kinds: tuple[Kind | None, ...]  # one per key; None: the key does not exist
    args: Callable[[Sequence[str]], tuple[object, ...]]
    want: Callable[[Sequence[bytes]], Reply]
    unordered: bool = False  # the reply is a set: compared sorted

    def __str__(self) -> str:
        return self.command


def _is(value: Reply) -> Callable[[Sequence[bytes]], Reply]:
    return lambda _keys: value


STRINGS = [
    Case("MGET", ("string", "string"), lambda k: ("MGET", *k), _is([b"v0", b"v1"])),
    Case("MSET", (None, None), lambda k: ("MSET", k[0], "x", k[1], "y"), _is("OK")),
    Case("MSETNX", (None, None), lambda k: ("MSETNX", k[0], "x", k[1], "y"), _is(1)),
]


def _plain(command: str, reply: Reply) -> Case:
    """``COMMAND key key``: two existing strings."""
    return Case(command, ("string", "string"), lambda k: (command, *k), _is(reply))


GENERIC = [
    *(_plain(c, 2) for c in ("DEL", "UNLINK", "EXISTS", "TOUCH")),
    Case("RENAME", ("string", None), lambda k: ("RENAME", *k), _is("OK")),
    Case("COPY", ("string", None), lambda k: ("COPY", *k), _is(1)),
]
SETS = [
    Case("SUNION", ("set", "set"), lambda k: ("SUNION", *k), _is([b"m", b"s0", b"s1"]), True),
    Case("SUNIONSTORE", (None, "set", "set"), lambda k: ("SUNIONSTORE", *k), _is(3)),
    Case("SINTER", ("set", "set"), lambda k: ("SINTER", *k), _is([b"m"])),
    Case("SINTERCARD", ("set", "set"), lambda k: ("SINTERCARD", 2, *k), _is(1)),
    Case("SMOVE", ("set", "set"), lambda k: ("SMOVE", *k, "s0"), _is(1)),
]
SORTED_SETS = [
    Case("ZUNION", ("zset", "zset"), lambda k: ("ZUNION", 2, *k), _is([b"z0", b"z1", b"m"])),
    Case("ZUNIONSTORE", (None, "zset", "zset"), lambda k: ("ZUNIONSTORE", k[0], 2, *k[1:]), _is(3)),
    Case("ZINTER", ("zset", "zset"), lambda k: ("ZINTER", 2, *k), _is([b"m"])),
    Case("ZDIFF", ("zset", "zset"), lambda k: ("ZDIFF", 2, *k), _is([b"z0"])),
]
LISTS = [
    Case("LMOVE", ("list", "list"), lambda k: ("LMOVE", *k, "LEFT", "RIGHT"), _is(b"l0")),
    Case("BLMOVE", ("list", "list"), lambda k: ("BLMOVE", *k, "LEFT", "RIGHT", 1), _is(b"l0")),
    Case("BLPOP", ("list", "list"), lambda k: ("BLPOP", *k, 1), lambda k: [k[0], b"l0"]),
]
STREAMS = [
    Case(
        "XREAD",
        ("stream", "stream"),
        lambda k: ("XREAD", "COUNT", 1, "STREAMS", *k, "0", "0"),
        lambda k: [[key, [[b"1-0", [b"f", b"v%d" % i]]]] for i, key in enumerate(k)],
    ),
]
HYPERLOGLOG = [
    Case("PFMERGE", (None, "hll", "hll"), lambda k: ("PFMERGE", *k), _is("OK")),
    Case("PFCOUNT", ("hll", "hll"), lambda k: ("PFCOUNT", *k), _is(2)),
]
BITMAPS = [Case("BITOP", (None, "string", "string"), lambda k: ("BITOP", "AND", *k), _is(2))]
GEO = [
    Case(
        "GEOSEARCHSTORE",
        (None, "geo"),
        lambda k: ("GEOSEARCHSTORE", *k, "FROMLONLAT", *PALERMO, "BYRADIUS", 10, "km"),
        _is(1),
    ),
]


# -- the check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Keys of one slot (one hash tag), one per key of a command, on their owner."""

    slot: int
    owner: Node
    keys: list[str]


@functools.cache
def _tag(slot: int, prefix: str) -> str:
    """A hash tag of ``slot`` (found by trying names: a few thousand CRCs, so kept: every
    test of the module uses the same three slots)."""
    return key_for_slot(slot, prefix=f"{prefix}multikey:")


def _group(owner: Node, slot: int, count: int, prefix: str) -> Group:
    tag = _tag(slot, prefix)
    keys = [f"{{{tag}}}:{i}" for i in range(count)]
    assert all(key_slot(k) == slot for k in keys), f"harness bug: {keys} not all in slot {slot}"
    return Group(slot, owner, keys)


def _show(r: Reply) -> str:
    return repr(r.text) if isinstance(r, ErrorReply) else f"the value {r!r}"


def _cmdline(args: Sequence[object]) -> str:
    return " ".join(str(a) for a in args)


def _dumps(groups: Sequence[Group]) -> dict[str, Reply]:
    """Every key's serialized value (``DUMP``; None: absent), read on its owner."""
    out: dict[str, Reply] = {}
    for g in groups:
        replies = raw_commands(g.owner, *(("DUMP", k) for k in g.keys))
        for key, got in zip(g.keys, replies, strict=True):
            assert not isinstance(got, ErrorReply), f"{g.owner.addr}: DUMP {key}: {got.text}"
            out[key] = got
    return out


def _refusals(case: Case, base: Group, odd: Group, nodes: Sequence[Node]) -> list[str]:
    """Each key position in turn taken from ``odd`` (another slot), the rest from
    ``base``: every variant sent to each of ``nodes``, each MUST answer CROSSSLOT."""
    where = (
        f"both on {base.owner.addr}"
        if odd.owner is base.owner
        else f"on {base.owner.addr} and {odd.owner.addr}"
    )
    variants = []
    for i in range(len(case.kinds)):
        keys = [*base.keys[:i], odd.keys[i], *base.keys[i + 1 :]]
        variants.append(case.args(keys))
    problems = []
    for node in nodes:
        for args, got in zip(variants, raw_commands(node, *variants), strict=True):
            if not (isinstance(got, ErrorReply) and got.text == CROSSSLOT):
                problems.append(
                    f"{case}: {RULE}: slots {base.slot} and {odd.slot} ({where}), "
                    f"sent to {node.addr}: `{_cmdline(args)}` replied {_show(got)}, "
                    f"expected {CROSSSLOT!r}"
                )
    return problems


def check_multikey(
    case: Case, impl: str, prefix: str, master: Node, other: Node, slots: Sequence[int]
) -> None:
    """The whole rule for one command: ``slots`` are two slots of ``master`` and one of
    ``other``; keys are made in them under ``prefix`` and deleted afterwards."""
    (info,) = raw_commands(master, ("COMMAND", "INFO", case.command))
    if info == [None]:
        pytest.skip(f"{impl} has no {case.command} (COMMAND INFO {case.command} answers nil)")
    n = len(case.kinds)
    same, near, far = (
        _group(master, slots[0], n, prefix),
        _group(master, slots[1], n, prefix),
        _group(other, slots[2], n, prefix),
    )
    groups = [same, near, far]
    try:
        for g in groups:
            kinds = enumerate(zip(case.kinds, g.keys, strict=True))
            setup = [_create(kind, k, i) for i, (kind, k) in kinds if kind is not None]
            for args, got in zip(
                setup, raw_commands(g.owner, *setup) if setup else [], strict=True
            ):
                assert not isinstance(got, ErrorReply), f"setup `{_cmdline(args)}`: {got.text}"
        before = _dumps(groups)
        problems = _refusals(case, same, near, [master])
        problems += _refusals(case, same, far, [master, other])
        after = _dumps(groups)
        problems += [
            f"{case}: a refused command MUST change nothing, yet {k!r} (slot {key_slot(k)}) "
            f"{_change(before[k], after[k])}"
            for k in before
            if before[k] != after[k]
        ]
        args = case.args(same.keys)
        (got,) = raw_commands(master, args)
        want = case.want([k.encode() for k in same.keys])
        if case.unordered and isinstance(got, list):
            got = sorted(got, key=repr)
            want = sorted(want, key=repr) if isinstance(want, list) else want
        if got != want:
            problems.append(
                f"{case}: keys sharing a hash tag (slot {same.slot}) MUST be served: "
                f"{master.addr} replied {_show(got)} to `{_cmdline(args)}`, expected {want!r}"
            )
        assert not problems, "\n".join(problems)
    finally:
        for g in groups:
            raw_commands(g.owner, ("DEL", *g.keys))


def _change(before: Reply, after: Reply) -> str:
    if before is None:
        return "was created"
    return "was deleted" if after is None else "holds another value (its DUMP differs)"


@pytest.fixture(autouse=True)
def _acl_grants(request: pytest.FixtureRequest, harness_state: HarnessState) -> None:
    """Under ``--auth acl``, skip (before a cluster is started for it) a command whose
    check sends what the harness's ACL user may not run. SINTERCARD can stay out of
    HARNESS_COMMANDS for good: Redis 6.2 refuses to start with an ACL rule naming a
    command it lacks."""
    case = request.node.callspec.params["case"]
    if harness_state.auth == "acl" and (missing := _not_granted(case)):
        pytest.skip(
            f"the harness's ACL user may not run {', '.join(missing)} "
            "(not in harness.security.HARNESS_COMMANDS)"
        )


def _not_granted(case: Case) -> list[str]:
    """The commands the check of ``case`` sends that are not in HARNESS_COMMANDS."""
    sent = {case.command, "COMMAND", "DUMP", "DEL"}
    sent |= {str(_create(kind, "k", 0)[0]) for kind in case.kinds if kind is not None}
    return sorted(c for c in sent if c.lower() not in HARNESS_COMMANDS)


def _layout(cluster: Cluster) -> tuple[Node, Node, list[int]]:
    """A master, another master, and three slots: the first and last of the first
    master's ranges (two slots, one node), and the second master's first."""
    master, other = cluster.initial_masters[0], cluster.initial_masters[1]
    me = cluster.view(master, with_shards=False).myself
    assert me is not None and me.slots, f"{master.addr} owns no slots"
    first, last = me.slots[0][0], me.slots[-1][1]
    assert first != last, f"{master.addr} owns one slot only"
    return master, other, [first, last, cluster.first_slot(other)]


Check = Callable[[Case], None]


@pytest.fixture
def multikey(cluster: Cluster, harness_state: HarnessState) -> Check:
    """:func:`check_multikey` on this cluster's first two masters."""
    master, other, slots = _layout(cluster)
    impl, prefix = f"{cluster.impl.flavor} {cluster.impl.version_str}", harness_state.key_prefix
    return lambda case: check_multikey(case, impl, prefix, master, other, slots)


# -- the families -------------------------------------------------------------------------


@pytest.mark.parametrize("case", STRINGS, ids=str)
def test_string_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``MGET``, ``MSET`` and ``MSETNX`` on keys of different slots are refused with
    ``CROSSSLOT`` (same master or not) and write nothing; on keys of one hash tag they
    are served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page (its own example is ``MGET``).
    """
    multikey(case)


@pytest.mark.parametrize("case", GENERIC, ids=str)
def test_generic_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``DEL``, ``UNLINK``, ``EXISTS``, ``TOUCH``, ``RENAME`` and ``COPY`` on keys
    of different slots are refused with ``CROSSSLOT`` and delete, rename or copy
    nothing; on keys of one hash tag they are served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    ``RENAME`` page ("In Cluster mode, both key and newkey must be in the same hash
    slot"); the "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", SETS, ids=str)
def test_set_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: set unions and intersections (``SUNION``, ``SUNIONSTORE``, ``SINTER``,
    ``SINTERCARD``) and ``SMOVE`` on keys of different slots are refused with
    ``CROSSSLOT`` and store or move nothing; on keys of one hash tag they are served.

    Redis Cluster specification, "Implemented subset" (its own example: "Set type unions
    or intersections") and "Multi-keys operations"; the "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", SORTED_SETS, ids=str)
def test_sorted_set_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``ZUNION``, ``ZUNIONSTORE``, ``ZINTER`` and ``ZDIFF`` on keys of different
    slots are refused with ``CROSSSLOT`` and store nothing; on keys of one hash tag
    they are served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", LISTS, ids=str)
def test_list_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``LMOVE``, ``BLMOVE`` and ``BLPOP`` of several lists, on keys of different
    slots, are refused with ``CROSSSLOT`` at once (a blocking command does not block)
    and pop or push nothing; on keys of one hash tag they are served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", STREAMS, ids=str)
def test_reading_several_streams_needs_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``XREAD`` of several streams of different slots is refused with
    ``CROSSSLOT``; of streams under one hash tag it returns each stream's entries.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", HYPERLOGLOG, ids=str)
def test_hyperloglog_commands_need_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``PFMERGE`` and ``PFCOUNT`` of several keys of different slots are refused
    with ``CROSSSLOT`` and merge nothing; under one hash tag they are served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", BITMAPS, ids=str)
def test_bitop_needs_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``BITOP`` whose destination or sources are in different slots is refused
    with ``CROSSSLOT`` and stores nothing; under one hash tag it is served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)


@pytest.mark.parametrize("case", GEO, ids=str)
def test_geosearchstore_needs_one_slot(multikey: Check, case: Case) -> None:
    """MUST: ``GEOSEARCHSTORE`` whose destination and source are in different slots is
    refused with ``CROSSSLOT`` and stores nothing; under one hash tag it is served.

    Redis Cluster specification, "Implemented subset" and "Multi-keys operations"; the
    "CROSSSLOT error" page.
    """
    multikey(case)
