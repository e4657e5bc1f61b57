"""Link faults through Toxiproxy: latency, bandwidth, slow close, resets, cut clients.

A proxied cluster (``proxied=True``) has one proxy in front of each node's client port
and one in front of its bus port, and every node announces its proxies, so
``CLUSTER SLOTS/SHARDS``, MOVED and ASK all point through them. The proxies are state of
this layer: :meth:`LinkFaults.wire` creates them, :meth:`LinkFaults.unwire` removes them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, NotSupportedError
from harness.faults.base import FaultGroup, Target, as_nodes
from harness.faults.kinds import FaultKind, declare, healed_name
from harness.ports import PortLease

if TYPE_CHECKING:
    from harness.backends.base import Node
    from harness.history import Event


def _link(name: str, doc: str) -> FaultKind:
    return declare(name, {healed_name(name)}, doc=doc)


LATENCY = _link("latency", "client traffic delayed each way")
BANDWIDTH = _link("bandwidth", "client traffic throttled each way")
SLOW_CLOSE = _link("slow-close", "closing of client connections delayed")
RESET_CONNECTIONS = _link("reset-connections", "client connections reset after data")
CUT_PROXIES = _link("cut-proxies", "the node's proxies disabled: connections closed")


class LinkFaults(FaultGroup):
    def __init__(self, target: Target) -> None:
        super().__init__(target)
        #: node -> (client-port proxy, bus-port proxy) (``harness.toxiproxy.client.Proxy``)
        self.proxies: dict[Node, tuple[Any, Any]] = {}
        self._lease = PortLease()

    # -- wiring ---------------------------------------------------------------------
    def wire(self) -> None:
        """One proxy for each node's client port and one for its bus port, on ports P and
        P+10000 (so MEET without a bus port works on every version); each node announces
        its proxies."""
        from harness.toxiproxy.client import connect

        impl = self.target.impl
        if not impl.has("runtime_announce"):
            raise NotSupportedError(
                f"{impl.name} lacks runtime_announce: it would keep announcing its own "
                "address, so clients could bypass the proxies"
            )
        server = connect()
        host = self.target.backend.proxy_host()
        nodes = self.target.nodes
        ports = self._lease.claim(len(nodes))
        tag = os.urandom(3).hex()
        for n, p in zip(nodes, ports, strict=True):
            client = server.create(
                f"rch-{tag}-{n.name}-client", f"{host}:{p}", f"{n.host}:{n.port}"
            )
            bus = server.create(
                f"rch-{tag}-{n.name}-bus", f"{host}:{p + 10000}", f"{n.host}:{n.port + 10000}"
            )
            self.proxies[n] = (client, bus)
            n.announce = (host, p)
            n.call("CONFIG", "SET", "cluster-announce-ip", host)
            # with tls-cluster the announced client port is the TLS one
            tls = n.security.tls
            n.call(
                "CONFIG", "SET", "cluster-announce-tls-port" if tls else "cluster-announce-port", p
            )
            n.call("CONFIG", "SET", "cluster-announce-bus-port", p + 10000)

    def unwire(self) -> None:
        for pair in self.proxies.values():
            for proxy in pair:
                with contextlib.suppress(HarnessError):
                    proxy.delete()
        self.proxies.clear()
        self._lease.release()

    def proxies_of(self, nodes: Node | Iterable[Node], bus: bool = False) -> list[Any]:
        found: list[Any] = []
        for n in as_nodes(nodes):
            pair = self.proxies.get(n)
            if pair is None:
                raise NotSupportedError(
                    f"{n.name} {n.addr} has no proxy: start the cluster with proxied=True "
                    "(@pytest.mark.cluster(proxied=True))"
                )
            found.extend(pair if bus else pair[:1])
        return found

    # -- toxics ---------------------------------------------------------------------
    @contextmanager
    def _toxic(
        self,
        kind: FaultKind,
        nodes: Node | Iterable[Node],
        toxic: str,
        bus: bool = False,
        **attrs: Any,
    ) -> Iterator[Event]:
        proxies = self.proxies_of(nodes, bus)
        label = ",".join(p.name for p in proxies)
        added: list[tuple[Any, str]] = []

        def apply() -> None:
            for p in proxies:
                for stream in ("downstream", "upstream"):
                    name = f"rch-{toxic}-{stream}"
                    p.add_toxic(toxic, stream=stream, name=name, **attrs)
                    added.append((p, name))

        try:
            yield self.inject(kind, label, apply, str(attrs))
        finally:
            for p, name in added:
                with contextlib.suppress(HarnessError):
                    p.remove_toxic(name)
            if added:
                self.healed(healed_name(kind.name), label)

    def latency(self, nodes: Node | Iterable[Node], ms: int, jitter: int = 0) -> Any:
        """Delay client traffic to and from the nodes by ``ms`` (± ``jitter``) each way."""
        return self._toxic(LATENCY, nodes, "latency", latency=ms, jitter=jitter)

    def bandwidth(self, nodes: Node | Iterable[Node], kbps: int) -> Any:
        """Limit client traffic of the nodes to ``kbps`` KB/s each way."""
        return self._toxic(BANDWIDTH, nodes, "bandwidth", rate=kbps)

    def slow_close(self, nodes: Node | Iterable[Node], delay_ms: int = 1000) -> Any:
        """Delay the closing of client connections by ``delay_ms``."""
        return self._toxic(SLOW_CLOSE, nodes, "slow_close", delay=delay_ms)

    def reset_connections(self, nodes: Node | Iterable[Node], after_ms: int = 0) -> Any:
        """Reset (TCP RST) client connections ``after_ms`` after they carry data."""
        return self._toxic(RESET_CONNECTIONS, nodes, "reset_peer", timeout=after_ms)

    @contextmanager
    def cut_clients(self, nodes: Node | Iterable[Node], bus: bool = False) -> Iterator[Event]:
        """Disable the nodes' client proxies (with ``bus=True`` also their bus proxies):
        live connections close and new ones are refused until the block ends. A
        proxy-only cut does not partition a cluster: a node still reaches its peers
        through *their* proxies, so nobody marks it failed."""
        proxies = self.proxies_of(nodes, bus)
        label = ",".join(p.name for p in proxies)
        disabled: list[Any] = []

        def apply() -> None:
            for p in proxies:
                p.disable()
                disabled.append(p)

        try:
            yield self.inject(CUT_PROXIES, label, apply)
        finally:
            for p in disabled:
                with contextlib.suppress(HarnessError):
                    p.enable()
            if disabled:
                self.healed(healed_name(CUT_PROXIES.name), label)
