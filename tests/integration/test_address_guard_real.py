"""The address guard on real servers: when a node announces an address the harness did
not create (``CONFIG SET cluster-announce-port`` at runtime), every client that follows
the cluster's map there is refused in one line, and not one packet reaches it: a
listening socket on that port accepts nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import redis

from harness import Cluster, ClusterSpec, guard, key_for_slot
from harness.attach import attach
from harness.backends.base import Node
from harness.impl import Implementation
from harness.ports import PortLease
from harness.topology import parse_cluster_nodes
from harness.toxiproxy import ToxiproxyServer
from harness.toxiproxy.client import Toxiproxy
from harness.wait import wait_for
from harness.workload import Workload, WorkloadSpec


class Trap:
    """A listener on a port the harness never created: it records every connection."""

    def __init__(self) -> None:
        self.lease = PortLease()
        (self.port,) = self.lease.claim(1)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.sock.setblocking(False)

    def refusal(self) -> str:
        return (
            f"address guard: refused to connect to 127.0.0.1:{self.port}: "
            "not a node this harness started nor one named with --nodes"
        )

    def accepted(self) -> bool:
        """Whether anything connected (the kernel completes a handshake without accept)."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self) -> None:
        self.sock.close()
        self.lease.release()


@pytest.fixture
def trap() -> Iterator[Trap]:
    t = Trap()
    yield t
    t.close()


@pytest.fixture
def cluster(any_impl: Implementation) -> Iterator[Cluster]:
    if not any_impl.has("runtime_announce"):
        pytest.skip(f"{any_impl.name} lacks runtime_announce")
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=0)) as c:
        yield c


def announce(cluster: Cluster, node: Node, port: int) -> None:
    """``node`` announces ``port`` as its client port; returns once every node says so
    (so ``CLUSTER SLOTS`` and ``MOVED`` from any of them name it)."""
    node.call("CONFIG", "SET", "cluster-announce-port", port)

    def seen() -> tuple[bool, list[int]]:
        ports = [
            next(
                e.port
                for e in parse_cluster_nodes(str(n.call("CLUSTER", "NODES")))
                if e.node_id == node.node_id
            )
            for n in cluster.nodes
        ]
        return all(p == port for p in ports), ports

    wait_for(seen, 30, f"{node.name} announced as port {port} everywhere")


def test_a_cluster_client_refuses_an_announced_address_it_did_not_create(
    cluster: Cluster, trap: Trap
) -> None:
    announce(cluster, cluster.initial_masters[0], trap.port)
    with pytest.raises(guard.AddressRefused) as info:
        client = cluster.client()  # reads CLUSTER SLOTS, then sends COMMAND to some node
        for slot in (0, 8000, 16000):  # one key on each master
            client.set(key_for_slot(slot), 1)
    assert str(info.value) == trap.refusal()
    assert not trap.accepted()


def test_moved_to_an_address_the_harness_did_not_create_is_refused(
    cluster: Cluster, trap: Trap
) -> None:
    first, second, _ = cluster.initial_masters
    client = cluster.client()  # its map predates the announce
    slot = 100  # the first master's, and empty
    key = key_for_slot(slot)
    assert cluster.owner_of_slot(slot) is first
    client.set(key_for_slot(8000), "before")
    announce(cluster, second, trap.port)
    assert first.call("CLUSTER", "SETSLOT", slot, "NODE", second.node_id) == "OK"
    with pytest.raises(redis.exceptions.MovedError, match=f"^{slot} 127.0.0.1:{trap.port}$"):
        first.call("GET", key)  # what the client will be told
    with pytest.raises(guard.AddressRefused) as info:
        client.set(key, 1)
    assert str(info.value) == trap.refusal()
    assert not trap.accepted()


@pytest.mark.parametrize("engine", ["redis-py", "raw"])
def test_the_workload_stops_on_the_refusal_and_sends_nothing_there(
    cluster: Cluster, trap: Trap, engine: str
) -> None:
    announce(cluster, cluster.initial_masters[1], trap.port)
    spec = WorkloadSpec(kind="set", clients=2, rate=400, max_ops=400, engine=engine)  # type: ignore[arg-type]
    wl = Workload(cluster, spec)
    with pytest.raises(guard.AddressRefused) as info, wl.running():
        wl.wait_ops(400, timeout=10)
    assert str(info.value) == trap.refusal()
    assert not trap.accepted()


def test_an_external_cluster_is_refused_an_address_not_in_nodes(
    cluster: Cluster, trap: Trap
) -> None:
    """Attached as ``--backend external --nodes`` would: the names are all it may reach."""
    guard.revoke(*cluster.nodes)  # as if another process had started them
    named = [(n.host, n.port) for n in cluster.nodes]
    attached = attach(named, cluster.impl)
    attached.client().set(key_for_slot(8000), 1)  # the named nodes are reachable
    announce(attached, attached.initial_masters[0], trap.port)
    with pytest.raises(guard.AddressRefused) as info:
        client = attached.client()
        for slot in (0, 8000, 16000):
            client.set(key_for_slot(slot), 1)
    assert str(info.value) == trap.refusal()
    assert not trap.accepted()
    attached.close()


def _through(proxy_port: int) -> bytes:
    """What a client of the proxy gets: b"" once the proxy has closed it."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(100)


def test_the_harness_toxiproxy_does_not_proxy_to_a_foreign_upstream(trap: Trap) -> None:
    with ToxiproxyServer(check_upstream=guard.check) as server:  # as the harness starts it
        proxy = Toxiproxy(server.url).create("foreign", "127.0.0.1:0", f"127.0.0.1:{trap.port}")
        try:
            assert _through(proxy.port) == b""  # closed: the upstream was refused
        finally:
            proxy.delete()
    assert not trap.accepted()


def test_a_toxiproxy_of_ones_own_proxies_to_the_upstreams_given(trap: Trap) -> None:
    """``python -m harness toxiproxy``: the user names the upstreams over the API."""
    with ToxiproxyServer() as server:
        proxy = Toxiproxy(server.url).create("own", "127.0.0.1:0", f"127.0.0.1:{trap.port}")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
            wait_for(lambda: (trap.accepted(), "no connection yet"), 5, "the upstream reached")
        proxy.delete()
