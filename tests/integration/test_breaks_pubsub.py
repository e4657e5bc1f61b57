"""A node that does not hear messages published elsewhere must fail the Pub/Sub suite,
with the rule named.

The broken cluster is real servers with a small asyncio proxy in front of one master's
*cluster bus* port (the master announces it with ``cluster-announce-bus-port``, so every
other node's link to it goes through the proxy). The proxy passes every bus message
unchanged except ``PUBLISH`` (message type 4 of the cluster bus; Valkey 8's light header
keeps the type at the same offset and adds a flag bit): it drops them, which is what a
server that forgets to propagate classic Pub/Sub over the bus looks like to the node
behind it. Pings, gossip, failure reports and shard messages still pass, so the cluster
stays ``ok``. The unchanged conformance module then runs against it in a subprocess
(``--backend external``): its ``PUBLISH`` test fails naming the rule and the deaf node,
and the shard-channel tests, whose messages travel as ``PUBLISHSHARD``, pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncproxy import AsyncProxy, Reader, Writer
from sandbox import PYTEST, Sandbox, outcome

from harness import Cluster, ClusterSpec
from harness.backends import Node
from harness.impl import available
from harness.ports import BUS_OFFSET
from harness.wait import wait_for

SUITE = Path(__file__).resolve().parents[2] / "suites" / "conformance" / "test_pubsub.py"
TIMEOUT = 120
SIGNATURE = b"RCmb"  # every cluster bus message starts with it
HEADER = struct.Struct(">4sIHHH")  # signature, total length, version, port, type
PUBLISH = 4  # CLUSTERMSG_TYPE_PUBLISH (PUBLISHSHARD is 10)
LIGHT = 0x8000  # Valkey 8: the flag of a message with the light header


class PublishDropper(AsyncProxy):
    """A TCP proxy to a node's cluster bus port that drops the ``PUBLISH`` messages peers
    send to the node and forwards everything else, both ways."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.dropped = 0
        super().__init__(upstream)

    async def relay(self, peer_r: Reader, peer_w: Writer, node_r: Reader, node_w: Writer) -> None:
        await asyncio.gather(self._filter(peer_r, node_w), self._pass(node_r, peer_w))

    async def _filter(self, src: Reader, dst: Writer) -> None:
        """Forward whole bus messages from a peer to the node, but not ``PUBLISH``."""
        while True:
            try:
                head = await src.readexactly(HEADER.size)
            except asyncio.IncompleteReadError:
                return
            sig, total, _ver, _port, kind = HEADER.unpack(head)
            if sig != SIGNATURE or total < HEADER.size:
                return  # not the cluster bus: nothing to judge, the link ends
            try:
                body = await src.readexactly(total - HEADER.size)
            except asyncio.IncompleteReadError:
                return
            if kind & ~LIGHT == PUBLISH:
                self.dropped += 1
                continue
            dst.write(head + body)
            await dst.drain()

    @staticmethod
    async def _pass(src: Reader, dst: Writer) -> None:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()


@contextlib.contextmanager
def deaf(cluster: Cluster, node: Node) -> Iterator[PublishDropper]:
    """A :class:`PublishDropper` in front of ``node``'s bus, once every other node's link
    to it goes through the proxy."""
    proxy = PublishDropper((node.host, node.port + BUS_OFFSET))
    try:
        node.call("CONFIG", "SET", "cluster-announce-bus-port", proxy.address[1])
        peers = [n for n in cluster.nodes if n is not node]

        def relinked() -> tuple[bool, str]:
            stale = [
                p.name
                for p in peers
                for e in cluster.view(p, with_shards=False).nodes
                if e.node_id == node.node_id and e.bus_port != proxy.address[1]
            ]
            done = not stale and proxy.links >= len(peers)
            return done, f"stale views {stale}, {proxy.links} of {len(peers)} links proxied"

        wait_for(relinked, cluster.recovery_s(), f"every peer linked to {node.name} via its proxy")
        yield proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("name", ["redis-7.0", "valkey-8.0"])  # full and light headers
def test_a_node_deaf_to_published_messages_fails_naming_the_rule(
    sandbox: Sandbox, name: str
) -> None:
    impl = available(name)
    if impl is None:
        pytest.skip(f"{name} is not installed")
    reports = sandbox.dir / "reports"
    with Cluster.start(impl, ClusterSpec(masters=3, replicas=0)) as cluster:
        victim = cluster.initial_masters[2]  # the sharded tests use [0] and [1]
        with deaf(cluster, victim) as proxy:
            nodes = ",".join(n.addr for n in cluster.nodes)
            res = sandbox.run(
                [*PYTEST, str(SUITE), "--backend", "external", "--nodes", nodes,
                 "--report-dir", str(reports)],
                timeout=TIMEOUT,
            )  # fmt: skip
            dropped = proxy.dropped
    tests = {
        t["nodeid"].split("::")[-1]: t
        for t in json.loads((reports / "summary.json").read_text())["tests"]
    }
    assert res.returncode == 1, outcome(res)
    outcomes = {name: t["outcome"] for name, t in tests.items()}
    assert outcomes["test_publish_reaches_subscribers_on_every_node"] == "failed", outcome(res)
    for name in ("test_shard_channels_are_served_by_their_shard", "test_ssubscribe_needs_one_slot"):
        assert outcomes[name] == "passed", outcome(res)
    assert dropped >= 1
    message = tests["test_publish_reaches_subscribers_on_every_node"]["message"]
    rule = "PUBLISH on any node MUST reach the SUBSCRIBErs of every node"
    assert rule in message, message
    assert f" {victim.addr} receiving the message published on" in message, message
