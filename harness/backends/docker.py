"""Docker backend: every node is a container on a network of its own cluster.

Addresses. Each cluster gets one user-defined bridge network with a subnet the harness
picks, and each node a fixed address on it, listening on 6379 (bus 16379). Nodes announce
that address (they learn it from MEET), and the harness's clients connect to it directly:
on Linux the Docker host routes to its bridge networks, so a client following ``MOVED``
lands on exactly the node the cluster named, and node-to-node traffic never leaves the
cluster network. Publishing ports on the host instead would make nodes announce host
ports, route peer traffic through the host, and make network faults (disconnecting a
node, dropping packets between two nodes) meaningless. The fixed address survives
restarts and disconnect/reconnect, which the cluster needs to recognise the node.

Data. Each node's directory on the host (config, ``nodes.conf``, RDB/AOF) is
bind-mounted at ``/data``; it lives in the run directory, so restarts keep it and cleanup
removes it. Logs are the container's output.

Images. Each node has its own image (:mod:`harness.backends.docker_node`): a rolling
upgrade adds nodes of another implementation or swaps a stopped node's (its container is
recreated from the new image under the same name, address and directory). The backend's
``image`` stays that of the cluster's first implementation, where the cluster's own tool
runs (:mod:`harness.clitool`).

Lifecycle. testcontainers creates and starts containers (labels, image checks); the docker
SDK does what it lacks (pause, kill, restart, network connect/disconnect). Ryuk cannot be
pulled here, so it is disabled; every container and network carries the run's labels and
:mod:`harness.backends.docker_resources` takes the place of the reaper.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness import images
from harness.backends.base import (
    Backend,
    Node,
    NodeConfig,
    release,
    require_stopped,
    require_tls,
    start_all,
)
from harness.backends.docker_node import DOCKER_ERRORS, PORT, RULE_TAG, DockerNode
from harness.backends.docker_resources import (
    LABEL_CLUSTER,
    LABEL_OWNER,
    LABEL_RUN,
    remove_resources,
    sweep_dead_runs,
)
from harness.errors import HarnessError, UsageError
from harness.images import resolve_image
from harness.impl import Implementation
from harness.runs import Run, proc_start_time
from harness.security import Security

__all__ = ["PORT", "RULE_TAG", "DockerBackend", "DockerNode"]

SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")


class DockerBackend(Backend):
    """Nodes as containers on a per-cluster network; images built or given."""

    name = "docker"
    #: what create_nodes made nodes of: add_nodes makes more alike
    _made: tuple[Implementation, NodeConfig, Path, Security]

    def proxy_host(self) -> str:
        """The bridge's gateway: the host's own address on the cluster network."""
        return str(next(self.subnet.hosts()))

    @classmethod
    def unsupported(cls, capability: str, impl: Implementation) -> str | None:
        return None if capability == "network_faults" else super().unsupported(capability, impl)

    def __init__(self, run: Run | None = None, *, network_faults: bool = False) -> None:
        self.run = run or Run.current()
        self.client = images.docker_client()
        # the watchdog and the sweep then also remove the run's containers and networks
        self.run.note("harness.backends.docker_resources:remove_run_resources", self.run.id)
        sweep_dead_runs(self.client)
        #: image and server of create_nodes' implementation (the cluster's tool runs in it,
        #: :mod:`harness.clitool`); each node has its own (:meth:`swap`, :meth:`add_nodes`)
        self.image = ""
        self.server = ""
        self._images: dict[Implementation, tuple[str, str]] = {}
        self.cluster_id = ""
        self.network: Any = None
        self.network_name = ""
        self.nodes: list[DockerNode] = []

    def labels(self) -> dict[str, str]:
        pid = os.getpid()
        return {
            LABEL_RUN: self.run.id,
            LABEL_OWNER: f"{pid}:{proc_start_time(pid)}",
            LABEL_CLUSTER: self.cluster_id,
        }

    def _make_network(self) -> None:
        used = set()
        with contextlib.suppress(*DOCKER_ERRORS):
            for net in self.client.networks.list():
                for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
                    with contextlib.suppress(ValueError, KeyError):
                        used.add(ipaddress.ip_network(cfg["Subnet"]))
        name = f"rch-{self.run.id[-6:]}-{self.cluster_id}"
        for subnet in SUBNET_POOL.subnets(new_prefix=24):
            if any(subnet.overlaps(u) for u in used):
                continue
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                self.network = self.client.networks.create(
                    name, driver="bridge", ipam=ipam, labels=self.labels(), check_duplicate=True
                )
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue  # taken meanwhile by another run
                raise HarnessError(f"cannot create network {name}: {images.reason(exc)}") from exc
            self.network_name = name
            self.subnet = subnet
            return
        raise HarnessError(
            f"no free /24 left in {SUBNET_POOL} for a cluster network; remove unused networks"
        )

    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        if ports:
            raise UsageError(
                "fixed ports are for the local backend; docker nodes listen on 6379 at their own address"
            )
        if self.network is not None:
            raise HarnessError(
                "a DockerBackend runs one cluster; create another backend for another cluster"
            )
        self.image, self.server = self._image(impl)
        self.cluster_id = os.urandom(3).hex()
        self._make_network()
        base = Path(tempfile.mkdtemp(prefix="cluster-", dir=self.run.dir))
        self._made = (impl, cfg, base, Security.create(cfg.security, base))
        return self.add_nodes(count)

    def _image(self, impl: Implementation) -> tuple[str, str]:
        """(image, server in it) for ``impl``, resolved once per backend."""
        if impl not in self._images:
            self._images[impl] = resolve_image(self.client, impl)
        return self._images[impl]

    def add_nodes(self, count: int, impl: Implementation | None = None) -> list[Node]:
        if self.network is None:
            raise HarnessError("add_nodes extends a cluster: create_nodes comes first")
        made, cfg, base, security = self._made
        impl = impl or made
        if impl != made:
            require_tls(impl, security)
        image = self._image(impl)
        hosts = list(self.subnet.hosts())[1:]  # .1 is the bridge's gateway
        first = len(self.nodes)
        if first + count > len(hosts):
            raise HarnessError(f"a cluster network holds at most {len(hosts)} nodes")
        nodes = [
            DockerNode(self, impl, cfg, i, str(hosts[i]), base, security, image)
            for i in range(first, first + count)
        ]
        self.nodes.extend(nodes)
        return start_all(nodes, timeout=30)

    def swap(self, node: Node, impl: Implementation) -> None:
        n = self._own(node)
        require_stopped(n, n.alive)
        require_tls(impl, self._made[3])
        n.replace_server(impl, self._image(impl))

    # -- cutting links (harness.backends.base.CutsLinks) ------------------------------
    def cut_off(self, node: Node) -> None:
        """Disconnect the node from its cluster network: no peer and no client reaches it."""
        n = self._own(node)
        n._docker("disconnect", self.network.disconnect, n.container, force=True)

    def reconnect(self, node: Node) -> None:
        """Reconnect with the same address (peers know the node by it)."""
        n = self._own(node)
        n._docker("reconnect", self.network.connect, n.container, ipv4_address=n.host)

    def block(self, target: Node, source: Node) -> None:
        self._own(target).iptables(*self._drop_rule("-I", source))

    def unblock(self, target: Node, source: Node) -> None:
        n = self._own(target)
        if n.state != "stopped":  # a restarted container has a fresh namespace: no rule
            n.iptables(*self._drop_rule("-D", source), check=False)

    @staticmethod
    def _drop_rule(op: str, source: Node) -> tuple[str, ...]:
        return (
            op,
            "INPUT",
            "-s",
            source.host,
            "-j",
            "DROP",
            "-m",
            "comment",
            "--comment",
            RULE_TAG,
        )

    def _own(self, node: Node) -> DockerNode:
        if not isinstance(node, DockerNode) or node.backend is not self:
            raise HarnessError(f"{node!r} is not a node of this docker backend")
        return node

    def close(self) -> None:
        remove_resources(self.client, {LABEL_RUN: self.run.id, LABEL_CLUSTER: self.cluster_id})
        release(self.nodes)
        self.nodes.clear()
        self.network = None
