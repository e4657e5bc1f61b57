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

Lifecycle. testcontainers creates and starts containers (labels, image checks); the docker
SDK does what it lacks (pause, kill, restart, network connect/disconnect). Ryuk cannot be
pulled here, so it is disabled; every container and network carries the run's labels and
:mod:`harness.backends.docker_resources` takes the place of the reaper.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors
import redis
import requests
from docker.types import EndpointConfig

from harness import images
from harness.backends.base import Backend, Node, NodeConfig, release, render_config, start_all
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
from harness.security import PLAIN, Security
from harness.wait import Hopeless, wait_for

PORT = 6379
RULE_TAG = "redis-cluster-harness"
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")
DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def _tc_container(image: str) -> Any:
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True  # no registry to pull Ryuk from; we sweep
    return DockerContainer(image)


class DockerNode(Node):
    backend_name = "docker"

    def __init__(
        self,
        backend: DockerBackend,
        impl: Implementation,
        cfg: NodeConfig,
        index: int,
        ip: str,
        base: Path,
        security: Security = PLAIN,
    ) -> None:
        self.backend = backend
        self.security = security
        self.impl = impl
        self.index = index
        self.host = ip
        self.port = PORT
        self.dir = base / f"node-{index}"
        self.dir.mkdir(parents=True)
        # the directory is mounted at /data: the server reads its certificates there
        security.issue_node_files(self.dir, [ip, backend.proxy_host()])
        config = render_config(
            impl, cfg, port=PORT, bind="0.0.0.0", data_dir=images.DATA_DIR, security=security
        )
        (self.dir / "server.conf").write_text(config)
        self.container: Any = None  # docker.models.containers.Container
        self.state = "new"

    @property
    def description(self) -> str:
        cid = self.container.short_id if self.container is not None else "-"
        return f"{self.name} {self.addr} (container {cid}, dir {self.dir})"

    def host_pid(self) -> int | None:
        with contextlib.suppress(*DOCKER_ERRORS):
            if self.container is not None:
                self.container.reload()
                return int(self.container.attrs["State"].get("Pid") or 0) or None
        return None

    def process_state(self) -> str:
        if self.container is None:
            return "no container"
        with contextlib.suppress(*DOCKER_ERRORS):
            self.container.reload()
            st = self.container.attrs["State"]
            if st.get("Status") != "running":
                return f"container {st.get('Status')} (exit code {st.get('ExitCode')})"
        return f"container running, {super().process_state()}"

    def _create(self) -> None:
        be = self.backend
        tc = (
            _tc_container(be.image)
            .with_volume_mapping(str(self.dir), images.DATA_DIR, "rw")
            .with_command([f"{images.DATA_DIR}/server.conf"])
            .with_name(f"rch-{be.run.id[-6:]}-{be.cluster_id}-{self.name}")
            .with_kwargs(
                entrypoint=[be.server],
                labels=be.labels(),
                network=be.network_name,
                networking_config={
                    be.network_name: EndpointConfig(be.client.api._version, ipv4_address=self.host)
                },
                hostname=self.name,
                working_dir=images.DATA_DIR,
                stop_signal="SIGTERM",
            )
        )
        try:
            tc.start()
        except DOCKER_ERRORS as exc:
            raise HarnessError(
                f"cannot start {self.name} from {be.image}: {images.reason(exc)}"
            ) from exc
        self.container = tc.get_wrapped_container()

    def _docker(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.container is None:
            raise HarnessError(f"{self.name} {self.addr} has no container")
        try:
            return fn(*args, **kwargs)
        except DOCKER_ERRORS as exc:
            raise HarnessError(f"{what} {self.name} {self.addr}: {images.reason(exc)}") from exc

    def start(self) -> None:
        if self.container is None:
            self._create()
        else:
            self.container.reload()
            if self.container.status == "running":
                raise HarnessError(f"{self.name} {self.addr} is already running")
            self._docker("start", self.container.start)
        self.state = "running"

    def wait_answering(self, timeout: float) -> None:
        client = self.client(timeout=0.5)

        def pong() -> tuple[bool, str]:
            try:
                if self.ping(client):
                    return True, "PONG"
            except redis.exceptions.RedisError as exc:
                seen = str(exc)
            else:
                seen = "no PONG"
            self.container.reload()
            if self.container.status in ("exited", "dead"):
                code = self.container.attrs["State"].get("ExitCode")
                self.state = "stopped"
                raise Hopeless(
                    f"{self.name} {self.addr} exited at start-up (code {code}): {self._reason()}"
                )
            return False, seen

        try:
            wait_for(pong, timeout, f"{self.name} {self.addr} answering PING", interval=0.01)
        finally:
            client.close()

    def _reason(self) -> str:
        lines = [ln for ln in self.log_text(4000).splitlines() if ln.strip()]
        fatal = [
            ln
            for ln in lines
            if any(w in ln for w in ("FATAL", "Bad directive", ">>>", "rror", "Could not"))
        ]
        return " | ".join((fatal or lines)[-3:]) or "no output"

    def kill(self) -> None:
        self._docker("kill", self.container.kill, signal="SIGKILL")
        self._wait_status({"exited", "dead"}, 10)
        self.state = "stopped"

    def pause(self) -> None:
        self._docker("pause", self.container.pause)
        self.state = "paused"

    def resume(self) -> None:
        self._docker("resume", self.container.unpause)
        self.state = "running"

    def stop(self, timeout: float = 10.0) -> None:
        if self.state == "paused":
            self.resume()
        self._docker("stop", self.container.stop, timeout=int(max(1, timeout)))
        self.state = "stopped"

    def _wait_status(self, wanted: set[str], timeout: float) -> None:
        def status() -> tuple[bool, str]:
            self.container.reload()
            return self.container.status in wanted, f"container status {self.container.status}"

        wait_for(status, timeout, f"{self.name} container {'/'.join(sorted(wanted))}")

    def log_text(self, max_bytes: int = 20000) -> str:
        if self.container is None:
            return ""
        with contextlib.suppress(*DOCKER_ERRORS):
            data: bytes = self.container.logs(stdout=True, stderr=True, tail=2000)
            return data[-max_bytes:].decode(errors="replace")
        return ""

    def netns_pid(self) -> int:
        self.container.reload()
        pid = int(self.container.attrs["State"].get("Pid") or 0)
        if not pid:
            raise HarnessError(
                f"{self.name} {self.addr} is not running; cannot reach its network namespace"
            )
        return pid

    def iptables(self, *args: str, check: bool = True) -> None:
        """Run the host's iptables inside this container's network namespace, so node
        images need no iptables of their own."""
        cmd = ["nsenter", "-t", str(self.netns_pid()), "-n", "iptables", "-w", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        if proc.returncode != 0 and check:
            raise HarnessError(
                f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )


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
        self.image = ""
        self.server = ""
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
        self.image, self.server = resolve_image(self.client, impl)
        self.cluster_id = os.urandom(3).hex()
        self._make_network()
        base = Path(tempfile.mkdtemp(prefix="cluster-", dir=self.run.dir))
        self._made = (impl, cfg, base, Security.create(cfg.security, base))
        return self.add_nodes(count)

    def add_nodes(self, count: int) -> list[Node]:
        if self.network is None:
            raise HarnessError("add_nodes extends a cluster: create_nodes comes first")
        impl, cfg, base, security = self._made
        hosts = list(self.subnet.hosts())[1:]  # .1 is the bridge's gateway
        first = len(self.nodes)
        if first + count > len(hosts):
            raise HarnessError(f"a cluster network holds at most {len(hosts)} nodes")
        nodes = [
            DockerNode(self, impl, cfg, i, str(hosts[i]), base, security)
            for i in range(first, first + count)
        ]
        self.nodes.extend(nodes)
        return start_all(nodes, timeout=30)

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
