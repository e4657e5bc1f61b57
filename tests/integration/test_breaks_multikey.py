"""A server that acknowledges a cross-slot ``MSET`` must fail the multi-key suite, with
the rule named.

The broken server is real servers with a small asyncio proxy in front of each master's
client port (each master announces its proxy, so the harness and every redirection go
through it). The proxy passes every command and reply unchanged, except one lie: a
``CROSSSLOT`` reply to ``MSET`` becomes ``+OK``, which is what a server that checks
"same node" instead of "same slot" would answer for two slots of one master (KeyDB does
this, see the facts notes). The unchanged conformance module then runs against it in a
subprocess (``--backend external``): its ``MSET`` test fails naming the CROSSSLOT rule,
and ``MGET`` and ``MSETNX``, through the same proxies, pass.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncproxy import AsyncProxy, Reader, Writer
from sandbox import PYTEST, Sandbox, outcome
from test_broken_migration import reply_end

from harness import Cluster, ClusterSpec, guard
from harness.impl import Implementation, available
from harness.ports import BUS_OFFSET
from harness.testing import RespError, parse_reply
from harness.wait import wait_for

SUITE = Path(__file__).resolve().parents[2] / "suites" / "conformance" / "test_multikey.py"
TIMEOUT = 120


class CrossslotLiar(AsyncProxy):
    """A TCP proxy to ``upstream`` that forwards one command and its reply at a time (so
    a reply it replaces stays in place), answering ``+OK`` instead of a ``CROSSSLOT``
    error to ``MSET``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.lies = 0
        super().__init__(upstream)

    async def relay(self, client_r: Reader, client_w: Writer, up_r: Reader, up_w: Writer) -> None:
        inbox = replies = b""
        try:
            while True:
                parsed = parse_reply(inbox)
                if parsed is None:
                    if not (chunk := await client_r.read(65536)):
                        return
                    inbox += chunk
                    continue
                command, end = parsed
                up_w.write(inbox[:end])
                inbox = inbox[end:]
                await up_w.drain()
                while (cut := reply_end(replies)) is None:  # RESP3 too: clients say HELLO 3
                    if not (chunk := await up_r.read(65536)):
                        return
                    replies += chunk
                raw, replies = replies[:cut], replies[cut:]
                if self._lie(command, raw):
                    raw = b"+OK\r\n"
                client_w.write(raw)
                await client_w.drain()
        except RespError:
            return

    def _lie(self, command: object, reply: bytes) -> bool:
        if not (isinstance(command, list) and command and isinstance(command[0], bytes)):
            return False
        if command[0].upper() != b"MSET" or not reply.startswith(b"-CROSSSLOT "):
            return False
        self.lies += 1
        return True


@contextlib.contextmanager
def lying_masters(cluster: Cluster) -> Iterator[list[CrossslotLiar]]:
    """A :class:`CrossslotLiar` in front of every master, announced by it (its bus port
    stays its own), once every node knows every master at its proxy."""
    masters = cluster.initial_masters
    liars = [CrossslotLiar((m.host, m.port)) for m in masters]
    owner = object()
    guard.allow(owner, [p.address for p in liars])
    try:
        for m, p in zip(masters, liars, strict=True):
            m.call("CONFIG", "SET", "cluster-announce-bus-port", m.port + BUS_OFFSET)
            m.call("CONFIG", "SET", "cluster-announce-port", p.address[1])
        want = {
            m.node_id: f"{p.address[0]}:{p.address[1]}" for m, p in zip(masters, liars, strict=True)
        }

        def announced() -> tuple[bool, list[str]]:
            seen = [
                e.addr
                for n in cluster.live_nodes()
                for e in cluster.view(n, with_shards=False).nodes
                if e.node_id in want and e.addr != want[e.node_id]
            ]
            return not seen, seen

        wait_for(announced, cluster.recovery_s(), "every master known at its proxy")
        yield liars
    finally:
        for p in liars:
            p.close()
        guard.revoke(owner)


def server() -> Implementation:
    """A server that takes ``cluster-announce-*`` at run time (not Redis 6.2)."""
    impl = available("redis-7.0") or available("valkey-8.0")
    if impl is None:
        pytest.skip("needs redis-7.0 or valkey-8.0")
    return impl


def test_a_server_that_acknowledges_cross_slot_mset_fails_naming_the_rule(
    sandbox: Sandbox,
) -> None:
    reports = sandbox.dir / "reports"
    with (
        Cluster.start(server(), ClusterSpec(masters=3, replicas=0)) as cluster,
        lying_masters(cluster) as liars,
    ):
        nodes = ",".join(f"{h}:{p}" for h, p in (liar.address for liar in liars))
        res = sandbox.run(
            [*PYTEST, str(SUITE), "--backend", "external", "--nodes", nodes,
             "--report-dir", str(reports), "-k", "test_string_commands"],
            timeout=TIMEOUT,
        )  # fmt: skip
        lies = sum(p.lies for p in liars)
    tests = {
        t["nodeid"].rsplit("[", 1)[-1].rstrip("]"): t
        for t in json.loads((reports / "summary.json").read_text())["tests"]
    }
    assert res.returncode == 1, outcome(res)
    assert {k: t["outcome"] for k, t in tests.items()} == {
        "MGET": "passed",
        "MSET": "failed",
        "MSETNX": "passed",
    }, outcome(res)
    # each cross-slot MSET (2 positions x 3 placements) was acknowledged by a proxy
    assert lies == 6
    rule = "MSET: keys of different slots MUST be refused with CROSSSLOT, even on one master"
    assert tests["MSET"]["message"].startswith(f"AssertionError: {rule}: slots "), tests["MSET"]
    for where in ("both on 127.0.0.1:", "sent to 127.0.0.1:"):  # same node, and across
        assert where in res.stdout, outcome(res)
    assert "replied the value 'OK', expected \"CROSSSLOT Keys in request" in res.stdout
