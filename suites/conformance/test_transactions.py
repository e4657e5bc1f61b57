"""Conformance: transactions and scripts in a cluster. A node checks the keys of every
command, queued ones too, against the slots it serves: a command on two slots, or on a
slot of another master, is refused (``CROSSSLOT``, ``MOVED``) and a transaction that had
one refused aborts at ``EXEC``; ``EXEC`` itself is checked over all its queued commands,
so a transaction spanning slots is refused whole. Scripts and functions are held to the
same rule for their declared keys, and refused at run time when they touch a key the
node does not serve; script caches and function libraries belong to each node. Where the
servers' wording differs (script errors, ``NOSCRIPT``), :func:`_texts` names each
generation and its source.

Source: Redis Cluster specification, "Implemented subset" and "Redirection and
resharding" / "Multi-keys operations"; "Transactions" ("Errors inside a transaction",
"Optimistic locking using check-and-set"); "Scripting with Lua" ("Script parameterization",
"Script cache", "Eval flags"); "Redis Lua API reference" ("Script flags"); "Redis
functions" ("Functions in cluster"). Servers: ``processCommand`` / ``getNodeByQuery``
(server.c, cluster.c), ``multi.c``, ``scriptVerifyClusterState`` (script.c, 7.0+) and
``luaRedisGenericCommand`` (scripting.c, 6.2).
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from harness import Cluster, Implementation, key_for_slot, key_slot
from harness.backends import Node
from harness.plugin.state import HarnessState
from harness.testing import ErrorReply, error_code, raw_commands, wait_for

# these tests only write keys under the run's prefix (flushed between tests): they share
pytestmark = pytest.mark.shares_cluster

CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
FUNCTION_NOT_FOUND = "ERR Function not found"
GET_ARGV = "return redis.call('GET', ARGV[1])"  # reads a key it was not given as a key
MGET_ARGV = "return redis.call('MGET', ARGV[1], ARGV[2])"


@dataclass(frozen=True)
class Texts:
    """A server generation's replies when the cluster check refuses a script's command,
    and its ``NOSCRIPT``. ``known`` false: a flavor whose wording is not known here
    (Redis's newest stands in, and only its error code is compared)."""

    known: bool
    old_format: bool  # 6.2 scripting.c: "Error running script (call to f_<sha>): ..."
    non_local: str  # a key of a slot another node serves
    command_cross_slot: str  # one command of the script on two slots; {cmd}: its name
    noscript: str
    same_slot: str = "Script attempted to access keys that do not hash to the same slot"  # 7.0+

    def script_error(self, message: str, name: str, line: int, source: str = "user_script") -> str:
        """The reply to a script (``name``: its sha; a function's name) whose ``redis.call``
        on line ``line`` was refused with ``message``."""
        where = f"@{source}:{line}"
        if self.old_format:
            # luaPushError prefixes "<source>: <line>: ", the reply adds the Lua position
            trace = f"{where}: @{source}: {line}: {message}"
            return f"ERR Error running script (call to f_{name}): {trace}"
        return f"ERR {message} script: {name}, on {where}."


def _texts(impl: Implementation) -> Texts:
    """The wording of ``impl``'s generation, from its sources."""
    known = impl.flavor in ("redis", "valkey")
    old = impl.flavor == "redis" and impl.version < (7, 0)
    non_local = "Script attempted to access a non local key in a cluster node"
    if old:  # 6.2 luaRedisGenericCommand
        non_local = "Lua script attempted to access a non local key in a cluster node"
    # redis/redis#12707 (Redis 7.4, Valkey 8.0) tells a command of the script that spans
    # slots from a non-local key; before, both got the non-local text
    new_cross = not known or impl.version >= ((8, 0) if impl.flavor == "valkey" else (7, 4))
    cross = (
        "Command '{cmd}' in script attempted to access keys that don't hash to the same slot"
        if new_cross
        else non_local
    )
    # valkey-io/valkey#617 (Valkey 8.0, SCRIPT SHOW) shortened the shared NOSCRIPT reply
    short = impl.flavor == "valkey" and impl.version >= (8, 0)
    noscript = "NOSCRIPT No matching script." + ("" if short else " Please use EVAL.")
    return Texts(known, old, non_local, cross, noscript)


# -- helpers ------------------------------------------------------------------------------


def _slots(cluster: Cluster, master: Node, count: int) -> list[int]:
    """``count`` slots ``master`` serves, by its own view."""
    me = cluster.view(master, with_shards=False).myself
    assert me is not None and me.slots, f"{master.addr} owns no slots"
    slots = [s for lo, hi in me.slots for s in range(lo, hi + 1)][:count]
    assert len(slots) == count, f"{master.addr} owns fewer than {count} slots"
    return slots


@dataclass(frozen=True)
class Keys:
    """Keys for one test: ``a``, ``b`` on two slots of ``node``; ``a2`` on ``a``'s slot;
    ``far`` on a slot of ``other``, another master."""

    node: Node
    other: Node
    a: str
    a2: str
    b: str
    far: str

    @property
    def moved(self) -> str:
        """The redirection of ``far`` the node must answer."""
        return f"MOVED {key_slot(self.far)} {self.other.public_addr}"


@pytest.fixture
def keys(cluster: Cluster, harness_state: HarnessState, rng: random.Random) -> Iterator[Keys]:
    node, other = rng.sample(cluster.initial_masters, 2)
    sa, sb = _slots(cluster, node, 2)
    (sf,) = _slots(cluster, other, 1)

    def key(slot: int, name: str) -> str:  # under the run's prefix; a short tag is quick
        return f"{harness_state.key_prefix}tx:{{{key_for_slot(slot, prefix='t')}}}:{name}"

    k = Keys(node, other, key(sa, "a"), key(sa, "a2"), key(sb, "b"), key(sf, "far"))
    assert [key_slot(x) for x in (k.a, k.a2, k.b, k.far)] == [sa, sa, sb, sf], f"harness bug: {k}"
    yield k
    # on a cluster the harness does not own nothing flushes between tests: leave no key
    raw_commands(node, ("DEL", k.a, k.a2), ("DEL", k.b))
    raw_commands(other, ("DEL", k.far))


def _check(node: Node, rule: str, cmds: Sequence[Sequence[object]], want: Sequence[object]) -> None:
    """Send ``cmds`` on one connection; each reply must be ``want``'s (an ``ErrorReply``
    compares by its exact text). ``rule`` heads the failure."""
    got = raw_commands(node, *cmds)
    seen = [r.text if isinstance(r, ErrorReply) else r for r in got]
    wanted = [w.text if isinstance(w, ErrorReply) else w for w in want]
    for cmd, g, w in zip(cmds, seen, wanted, strict=True):
        assert g == w, (
            f"{rule}: {node.addr}: {' '.join(map(str, cmd))[:80]} replied {g!r}, expected {w!r}; "
            f"the whole exchange: {seen}"
        )


def _error(node: Node, cmd: Sequence[object], want: str, rule: str, *, exact: bool = True) -> None:
    """Run ``cmd``: it must fail with exactly ``want`` (``exact`` false: with its error
    code, the wording not being known for this server). ``rule`` heads the failure."""
    (got,) = raw_commands(node, cmd)
    shown = " ".join(map(str, cmd))[:80]
    assert isinstance(got, ErrorReply), f"{rule}: {node.addr} ran {shown} and replied {got!r}"
    if exact:
        assert got.text == want, f"{rule}: {node.addr} replied {got.text!r}, expected {want!r}"
    else:
        assert got.code == error_code(want), f"{rule}: {node.addr} replied {got.text!r}"


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def _functions_or_skip(node: Node) -> None:
    """Skip unless the server has functions (``COMMAND INFO FCALL`` names the command);
    script flags (``#!lua``) came with them, in Redis 7.0."""
    (info,) = raw_commands(node, ("COMMAND", "INFO", "FCALL"))
    if not isinstance(info, list) or not info or info[0] is None:
        pytest.skip(
            f"{node.addr} has no FCALL (COMMAND INFO): functions and script flags need Redis 7.0+"
        )


# -- transactions -------------------------------------------------------------------------


def test_transaction_on_one_slot_runs_every_command(keys: Keys) -> None:
    """MUST: a ``MULTI``/``EXEC`` whose keys all hash to one slot the node serves (a hash
    tag makes them share it) is queued and executed like on a single server: every
    command answers ``QUEUED`` and ``EXEC`` replies with each command's reply, in order.

    Redis Cluster specification, "Implemented subset" (multi-key operations on one slot)
    and "Multi-keys operations" (hash tags); "Transactions" / "Usage".
    """
    a, a2 = keys.a, keys.a2
    cmds = [("MULTI",), ("SET", a, "1"), ("INCR", a2), ("MGET", a, a2), ("EXEC",)]
    rule = "a transaction on one slot must run every command"
    _check(keys.node, rule, cmds, ["OK", "QUEUED", "QUEUED", "QUEUED", ["OK", 1, [b"1", b"1"]]])


def test_exec_of_commands_on_two_slots_is_refused(keys: Keys) -> None:
    """MUST: ``EXEC`` of commands that each name one slot, but together two, is refused
    with ``CROSSSLOT`` (the node checks every queued command's keys when ``EXEC`` comes)
    and the transaction is discarded: none of it runs, and a second ``EXEC`` finds no
    transaction. Both slots being served by this node does not make it acceptable.

    Redis Cluster specification, "Implemented subset" (multi-key operations only when all
    keys hash to the same slot); ``processCommand`` / ``getNodeByQuery``: EXEC is checked
    over ``c->mstate``, then ``discardTransaction``.
    """
    a, b = keys.a, keys.b
    cmds = [("MULTI",), ("SET", a, "1"), ("SET", b, "2"), ("EXEC",), ("EXEC",)]
    want = ["OK", "QUEUED", "QUEUED", ErrorReply(CROSSSLOT), ErrorReply(EXEC_WITHOUT_MULTI)]
    rule = "EXEC of commands on two slots must be refused with CROSSSLOT and discarded"
    _check(keys.node, rule, cmds, want)
    _check(keys.node, rule, [("GET", a), ("GET", b)], [None, None])  # nothing was set


@pytest.mark.parametrize("refused", ["crossslot", "moved"])
def test_refused_queued_command_aborts_exec(keys: Keys, refused: str) -> None:
    """MUST: a command refused while queued, because its keys span two slots
    (``CROSSSLOT``) or belong to a slot another master serves (``-MOVED <slot>
    <endpoint>:<port>``), is not queued and flags the transaction: ``EXEC`` answers
    ``EXECABORT`` and runs none of the commands that were queued.

    "Transactions" / "Errors inside a transaction" (an error while queueing makes EXEC
    refuse the transaction); Redis Cluster specification, "Implemented subset" and
    "MOVED Redirection"; ``processCommand`` (``flagTransaction``), ``multi.c``.
    """
    a = keys.a
    if refused == "crossslot":
        bad: tuple[object, ...] = ("MSET", a, "1", keys.b, "2")
        error = CROSSSLOT
    else:
        bad, error = ("SET", keys.far, "2"), keys.moved
    cmds = [("MULTI",), ("SET", a, "1"), bad, ("EXEC",), ("GET", a)]
    rule = f"a queued command refused with {error.split()[0]} must make EXEC answer EXECABORT"
    want = ["OK", "QUEUED", ErrorReply(error), ErrorReply(EXECABORT), None]
    _check(keys.node, rule, cmds, want)


def test_watch_needs_keys_of_one_served_slot(keys: Keys) -> None:
    """MUST: ``WATCH`` is a keyed command like any other: keys on two slots are refused
    with ``CROSSSLOT``, a key of another master's slot with ``-MOVED``. Keys of one slot
    the node serves are watched, and a change to them (by the same client, too) makes the
    next ``EXEC`` abort with a null reply.

    Redis Cluster specification, "Implemented subset" and "MOVED Redirection";
    "Transactions" / "Optimistic locking using check-and-set" and "WATCH explained".
    """
    a, a2 = keys.a, keys.a2
    rule = "WATCH is checked like any keyed command"
    _check(keys.node, rule, [("WATCH", a, keys.b)], [ErrorReply(CROSSSLOT)])
    _check(keys.node, rule, [("WATCH", keys.far)], [ErrorReply(keys.moved)])
    cmds = [("WATCH", a, a2), ("SET", a2, "changed"), ("MULTI",), ("SET", a, "1"), ("EXEC",)]
    rule = "a change to a watched key of one slot must abort EXEC"
    _check(keys.node, rule, cmds, ["OK", "OK", "OK", "QUEUED", None])
    _check(keys.node, rule, [("GET", a)], [None])


# -- scripts ------------------------------------------------------------------------------


def test_declared_script_keys_must_hash_to_one_served_slot(keys: Keys) -> None:
    """MUST: the keys a script declares (``EVAL``/``EVALSHA`` ``numkeys``) are checked
    before it runs, like a command's: two slots answer ``CROSSSLOT``, another master's
    slot ``-MOVED``, and keys of one served slot run the script.

    "Scripting with Lua" / "Script parameterization" (key names are the basis of cluster
    routing); Redis Cluster specification, "Implemented subset" and "MOVED Redirection".
    """
    script = "return #KEYS"
    sha = _sha(script)
    for cmd, arg in (("EVAL", script), ("EVALSHA", sha)):
        cmds = [
            ("SCRIPT", "LOAD", script),
            (cmd, arg, 2, keys.a, keys.b),
            (cmd, arg, 1, keys.far),
            (cmd, arg, 2, keys.a, keys.a2),
        ]
        rule = f"{cmd}'s declared keys are checked like a command's"
        want = [sha.encode(), ErrorReply(CROSSSLOT), ErrorReply(keys.moved), 2]
        _check(keys.node, rule, cmds, want)


def test_script_touching_a_key_of_another_node_is_refused(cluster: Cluster, keys: Keys) -> None:
    """MUST: a script that calls a command on a key it did not declare, of a slot another
    node serves, gets the command refused (a script cannot be redirected) and fails with
    an error naming a non-local key; with no key declared at all, too.

    "Scripting with Lua" / "Script parameterization" (scripts should only access keys
    given as input key arguments); ``scriptVerifyClusterState`` (7.0+: "Script attempted
    to access a non local key in a cluster node"), 6.2 ``luaRedisGenericCommand`` (the same
    after "Lua "; the reply wraps it as "Error running script (call to f_<sha>)").
    """
    t = _texts(cluster.impl)
    want = t.script_error(t.non_local, _sha(GET_ARGV), 1)
    rule = "a script's command on a key of another node must be refused"
    _error(keys.node, ("EVAL", GET_ARGV, 1, keys.a, keys.far), want, rule, exact=t.known)
    rule += " (no key declared)"
    _error(keys.node, ("EVAL", GET_ARGV, 0, keys.far), want, rule, exact=t.known)


def test_unflagged_script_may_touch_other_slots_of_its_node(cluster: Cluster, keys: Keys) -> None:
    """MUST: a script without flags (no ``#!`` line) keeps the old behaviour and may run
    commands on undeclared keys of other slots the node serves; but one command of it
    that spans two slots is refused like any command. Its wording differs by generation:
    Redis 7.4+ and Valkey 8.0+ say "Command '<name>' in script attempted to access keys
    that don't hash to the same slot" (redis/redis#12707); Redis 6.2 to 7.2 and Valkey 7.2
    reuse the non-local key text, which misnames the cause.

    "Scripting with Lua" / "Eval flags" (scripts without ``#!`` can access keys of
    different slots); Redis Cluster specification, "Implemented subset".
    """
    cmds = [("SET", keys.b, "v"), ("EVAL", GET_ARGV, 1, keys.a, keys.b)]
    _check(keys.node, "a script without flags may use other slots of its node", cmds, ["OK", b"v"])
    t = _texts(cluster.impl)
    want = t.script_error(t.command_cross_slot.format(cmd="mget"), _sha(MGET_ARGV), 1)
    rule = "one command of a script on keys of two slots must be refused"
    _error(keys.node, ("EVAL", MGET_ARGV, 1, keys.a, keys.a, keys.b), want, rule, exact=t.known)


def test_flagged_script_must_stay_on_its_declared_slot(cluster: Cluster, keys: Keys) -> None:
    """MUST (Redis 7.0+, Valkey): a script with flags (a ``#!lua`` line, even without
    flags) takes the defaults, which forbid keys of different slots: a command on an
    undeclared key of another slot, although this node serves it, fails with "Script
    attempted to access keys that do not hash to the same slot"; a key of another node
    still fails as non-local. The flag ``allow-cross-slot-keys`` lifts the first.

    "Scripting with Lua" / "Eval flags"; "Redis Lua API reference" / "Script flags" (by
    default scripts "are not able to run commands accessing keys of different hash
    slots").
    """
    _functions_or_skip(keys.node)
    script = "#!lua\n" + GET_ARGV
    t, sha = _texts(cluster.impl), _sha(script)
    rule = "a flagged script's command on another slot of its node must be refused"
    want = t.script_error(t.same_slot, sha, 2)
    _error(keys.node, ("EVAL", script, 1, keys.a, keys.b), want, rule, exact=t.known)
    rule = "a flagged script's command on a key of another node must be refused"
    want = t.script_error(t.non_local, sha, 2)
    _error(keys.node, ("EVAL", script, 1, keys.a, keys.far), want, rule, exact=t.known)
    allowed = "#!lua flags=allow-cross-slot-keys\n" + GET_ARGV
    cmds = [("SET", keys.b, "v"), ("EVAL", allowed, 1, keys.a, keys.b)]
    _check(keys.node, "allow-cross-slot-keys lets a script use other slots", cmds, ["OK", b"v"])


def test_script_cache_is_per_node(cluster: Cluster, keys: Keys, rng: random.Random) -> None:
    """MUST: the script cache is the node's own: a script loaded with ``SCRIPT LOAD`` on
    one master runs there by its SHA1, but is unknown to another master, whose
    ``EVALSHA`` answers ``NOSCRIPT`` (Redis: "No matching script. Please use EVAL.";
    Valkey 8.0+: "No matching script.", valkey-io/valkey#617). A cluster client must load
    its scripts on every master, or fall back to ``EVAL``.

    "Scripting with Lua" / "Script cache" and "Cache volatility" (the server keeps the
    cache; EVALSHA of a digest not in it returns NOSCRIPT).
    """
    token = f"per-node {rng.getrandbits(64):x}"  # a script never loaded anywhere before
    script = f"return '{token}'"
    sha = _sha(script)
    loaded = [("SCRIPT", "LOAD", script), ("EVALSHA", sha, 1, keys.a)]
    rule = "scripts are per node: a script loaded on a master must run there by its SHA1"
    _check(keys.node, rule, loaded, [sha.encode(), token.encode()])
    t = _texts(cluster.impl)
    rule = "scripts are per node: a script loaded on another master must be unknown here"
    _error(keys.other, ("EVALSHA", sha, 1, keys.far), t.noscript, rule, exact=t.known)
    _check(keys.other, rule, [("SCRIPT", "EXISTS", sha)], [[0]])


# -- functions ----------------------------------------------------------------------------


@pytest.mark.destructive("loads a function library on one master (deleted at the end)")
def test_functions_are_loaded_per_node(cluster: Cluster, keys: Keys, rng: random.Random) -> None:
    """MUST (Redis 7.0+, Valkey): ``FUNCTION LOAD`` loads a library on that node and its
    replicas, not on the other masters, where ``FCALL`` answers "Function not found";
    ``FCALL``'s declared keys must hash to one slot (``CROSSSLOT``); and a function, which
    always has flags, cannot touch an undeclared key of another slot ("Script attempted to
    access keys that do not hash to the same slot") or of another node (non-local key).

    "Redis functions" / "Functions in cluster" (propagated to replicas; loading on every
    node is the administrator's job); "Redis Lua API reference" / "Script flags";
    Redis Cluster specification, "Implemented subset".
    """
    _functions_or_skip(keys.node)
    lib = f"txlib{rng.getrandbits(32):x}"
    fn = f"{lib}_get"
    body = (
        f"#!lua name={lib}\n"
        f"redis.register_function('{fn}', "
        "function(keys, args) return redis.call('GET', args[1]) end)"
    )
    t = _texts(cluster.impl)
    rule = "functions are per node: a library loaded on a master must run there"
    _check(keys.node, rule, [("FUNCTION", "LOAD", body)], [lib.encode()])
    try:
        cmds = [("SET", keys.a, "v"), ("FCALL", fn, 1, keys.a, keys.a)]
        _check(keys.node, rule, cmds, ["OK", b"v"])
        cmd = ("FCALL", fn, 2, keys.a, keys.b, keys.a)
        _check(
            keys.node, "FCALL's declared keys must hash to one slot", [cmd], [ErrorReply(CROSSSLOT)]
        )
        rule = "a function's command on another slot of its node must be refused"
        want = t.script_error(t.same_slot, fn, 2, "user_function")
        _error(keys.node, ("FCALL", fn, 1, keys.a, keys.b), want, rule, exact=t.known)
        rule = "a function's command on a key of another node must be refused"
        want = t.script_error(t.non_local, fn, 2, "user_function")
        _error(keys.node, ("FCALL", fn, 1, keys.a, keys.far), want, rule, exact=t.known)
        rule = "functions are per node: a library loaded on another master must be unknown here"
        _error(keys.other, ("FCALL", fn, 1, keys.far, keys.far), FUNCTION_NOT_FOUND, rule)
        for r in cluster.replicas_of(keys.node):
            what = f"replica {r.addr} listing the library {lib} its master loaded"
            wait_for(functools.partial(_lists_library, r, lib), 5, what)
    finally:
        raw_commands(keys.node, ("FUNCTION", "DELETE", lib))


def _lists_library(node: Node, lib: str) -> tuple[bool, str]:
    (got,) = raw_commands(node, ("FUNCTION", "LIST", "LIBRARYNAME", lib))
    return isinstance(got, list) and len(got) == 1, repr(got)
