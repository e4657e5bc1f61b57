"""A migration that reports success but loses a batch must be caught, and named.

The broken server is real servers with a real TCP proxy in front of the target's client
port (the target announces the proxy, so clients, ``ASK`` and the source's ``MIGRATE``
all go through it). The proxy forwards every command and reply, except the
``RESTORE-ASKING`` commands of one slot (what a source's ``MIGRATE ... KEYS`` sends the
target, one per key): those it answers ``+OK`` itself and drops. The source takes the
batch for stored and deletes its copies, as it would after a target that acknowledged
and then lost them. Shown: the recorded workload's loss checker names the keys whose
acknowledged writes are gone, and ``migrate_slots`` stops at the batch (it asks the
target for every key MIGRATE acknowledged), naming the slot and the missing keys.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from harness import Cluster, ClusterSpec, checkers, guard
from harness.backends import Node
from harness.crc16 import key_for_slot, key_slot
from harness.impl import Implementation, available
from harness.ops import MigrationError, inspect_slots, migrate_slots
from harness.ports import BUS_OFFSET
from harness.testing import encode_command, parse_reply
from harness.wait import wait_for
from harness.workload import Workload, WorkloadSpec

FILL = 20  # keys of the lost slot besides the workload's one: one batch (batch=100)


#: RESP3 reply types whose line is a count of nested replies (per item), and of those
#: with a length-prefixed body; all others are one line
_NESTED = {b"*": 1, b"~": 1, b">": 1, b"%": 2, b"|": 2}
_BODY = {b"$", b"!", b"="}


def reply_end(buf: bytes, start: int = 0) -> int | None:
    """Where the RESP2/RESP3 reply at ``start`` ends, or None while it is incomplete
    (clients may speak RESP3 after ``HELLO 3``: maps, sets, attributes...)."""
    eol = buf.find(b"\r\n", start)
    if eol < 0:
        return None
    kind, line, end = buf[start : start + 1], buf[start + 1 : eol], eol + 2
    if kind in _BODY:
        n = int(line)
        return end if n < 0 else (end + n + 2 if len(buf) >= end + n + 2 else None)
    if kind in _NESTED:
        items = max(int(line), 0) * _NESTED[kind] + (1 if kind == b"|" else 0)
        for _ in range(items):
            nxt = reply_end(buf, end)
            if nxt is None:
                return None
            end = nxt
    return end


class LossyLink:
    """A TCP proxy to ``upstream`` that answers ``+OK`` to, and drops, every
    ``RESTORE-ASKING`` of a key in ``slot``; everything else passes, one command and its
    reply at a time per connection (in order, so the replies it makes up stay in place)."""

    def __init__(self, upstream: tuple[str, int], slot: int) -> None:
        self.upstream = upstream
        self.slot = slot
        self.dropped: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._server.getsockname()[:2]
        self._socks: list[socket.socket] = [self._server]
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="lossy-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                return
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(
                target=self._serve, args=(client, upstream), name="lossy-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError), client, upstream:
            inbox = b""
            replies = b""
            while True:
                parsed = parse_reply(inbox)
                if parsed is None:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    inbox += chunk
                    continue
                command, end = parsed
                raw, inbox = inbox[:end], inbox[end:]
                if self._drops(command):
                    client.sendall(b"+OK\r\n")
                    continue
                upstream.sendall(raw)
                while (cut := reply_end(replies)) is None:
                    chunk = upstream.recv(65536)
                    if not chunk:
                        return
                    replies += chunk
                client.sendall(replies[:cut])
                replies = replies[cut:]

    def _drops(self, command: object) -> bool:
        if not (isinstance(command, list) and len(command) > 1):
            return False
        name, key = command[0], command[1]
        if not (isinstance(name, bytes) and isinstance(key, bytes)):
            return False
        if name.upper() != b"RESTORE-ASKING" or key_slot(key) != self.slot:
            return False
        self.dropped.append(key.decode())
        return True

    def close(self) -> None:
        self._closed = True
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()


@contextlib.contextmanager
def lossy_target(cluster: Cluster, target: Node, slot: int) -> Iterator[LossyLink]:
    """Put a :class:`LossyLink` in front of ``target``: it announces the proxy's port
    (its bus port stays its own) and every node learns it, so everyone goes through it."""
    link = LossyLink((target.host, target.port), slot)
    guard.allow(link, [link.address])
    try:
        target.call("CONFIG", "SET", "cluster-announce-bus-port", target.port + BUS_OFFSET)
        target.call("CONFIG", "SET", "cluster-announce-port", link.address[1])
        target.announce = link.address
        want = f"{link.address[0]}:{link.address[1]}"

        def announced() -> tuple[bool, list[str]]:
            seen = [
                e.addr
                for n in cluster.live_nodes()
                for e in cluster.view(n, with_shards=False).nodes
                if e.node_id == target.node_id
            ]
            return all(a == want for a in seen), seen

        wait_for(announced, cluster.recovery_s(), f"{target.addr} known at its proxy {want}")
        yield link
    finally:
        link.close()
        guard.revoke(link)


def server(name: str) -> Implementation:
    """A server that takes ``cluster-announce-*`` at run time (not Redis 6.2)."""
    impl = available(name)
    if impl is None:
        pytest.skip(f"needs {name}")
    return impl


@pytest.mark.parametrize("name", ["redis-7.0", "valkey-8.0"])
def test_a_migration_that_drops_a_batch_is_caught_and_named(name: str) -> None:
    """Two slots of the source move under load; the target's link drops the one batch of
    the second (20 keys and one workload key). The migration stops at that batch naming
    the slot and the keys the target does not hold; the recorded workload's checker
    names the workload key whose acknowledged adds are gone."""
    impl = server(name)
    with Cluster.start(impl, ClusterSpec(masters=3, replicas=0)) as cluster:
        source, target = cluster.initial_masters[0], cluster.initial_masters[1]
        wl = Workload(cluster, WorkloadSpec(kind="set", clients=4, rate=1000, keys=24, seed=7))
        mine = [(k, key_slot(k)) for k in wl.keys if cluster.owner_of_slot(key_slot(k)) is source]
        (lost_key, lost_slot), (kept_key, kept_slot) = mine[0], mine[1]
        tag = key_for_slot(lost_slot, prefix="fill")
        for i in range(FILL):
            source.call("SET", f"{{{tag}}}:{i}", "v")
        with lossy_target(cluster, target, lost_slot) as link:  # clients reach it through it
            with wl.running():
                wl.wait_ops(400)
                before = {s: keys_in(source, s) for s in (lost_slot, kept_slot)}
                with pytest.raises(MigrationError) as caught:
                    migrate_slots(cluster, source, target, [kept_slot, lost_slot])
                wl.wait_ops(400)
            history = wl.final_read()
        report = inspect_slots(cluster, [lost_slot])[0]
        after_kept = keys_in(target, kept_slot)

    # the link acknowledged and dropped exactly the lost slot's batch
    assert sorted(link.dropped) == sorted(before[lost_slot])

    # (i) the migration names the slot, the count the target holds and the missing keys
    message = str(caught.value)
    assert f"slot {lost_slot} {source.addr} -> {target.addr}: MIGRATE acknowledged" in message
    assert f"{len(before[lost_slot])} keys, but the target holds " in message
    assert "missing '" in message
    # and its slot report says what is left: the slot open on both sides
    assert report.is_open, report.describe()
    assert f"slot {lost_slot}:" in report.describe()

    # (ii) the recorded workload's checker names the key whose acknowledged adds are gone
    result = checkers.check_set(history)
    assert not result.ok
    lost = {e.key for s in result.lost.values() for e in s.examples}
    assert lost == {lost_key}, result.describe()
    assert f"key {lost_key!r}" in result.describe()
    assert kept_key not in lost
    assert after_kept == before[kept_slot]  # the slot before it moved whole


def keys_in(node: Node, slot: int) -> set[str]:
    got = node.call("CLUSTER", "GETKEYSINSLOT", slot, 1000)
    assert isinstance(got, list)
    return {str(k) for k in got}


def test_the_link_passes_everything_else() -> None:
    """The proxy itself is sound: with nothing to drop, commands and replies (errors and
    pipelines too) come through unchanged."""
    impl = available("redis-7.0") or server("valkey-8.0")
    with Cluster.start(impl, ClusterSpec(masters=3, replicas=0)) as cluster:
        target = cluster.initial_masters[1]
        slot = cluster.first_slot(target)
        key = key_for_slot(slot, prefix="link:")
        with lossy_target(cluster, target, slot=-1) as link:
            cmds = [("SET", key, "1"), ("INCR", key), ("GET", key), ("HGET", key, "f")]
            with socket.create_connection(link.address, timeout=5) as s:
                s.sendall(b"".join(encode_command(c) for c in cmds))
                buf = b""
                out: list[object] = []
                while len(out) < len(cmds):
                    parsed = parse_reply(buf)
                    if parsed is None:
                        buf += s.recv(65536)
                        continue
                    out.append(parsed[0])
                    buf = buf[parsed[1] :]
        assert out[:3] == ["OK", 2, b"2"]
        assert str(getattr(out[3], "text", "")).startswith("WRONGTYPE")
        assert not link.dropped
