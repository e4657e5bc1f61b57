"""One node of the docker backend (:mod:`harness.backends.docker`): a container made
from its own image, on its cluster's network at a fixed address, with its directory on
the host bind-mounted at ``/data``. Its image may differ from its peers' (a rolling
upgrade, :meth:`DockerNode.replace_server`): the container is recreated under the same
name, address and directory.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import redis
import requests
from docker.types import EndpointConfig

from harness import images
from harness.backends.base import Node, NodeConfig, render_config, require_stopped
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.security import PLAIN, Security
from harness.wait import Hopeless, wait_for

if TYPE_CHECKING:
    from harness.backends.docker import DockerBackend

PORT = 6379
RULE_TAG = "redis-cluster-harness"
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
        image: tuple[str, str] = ("", ""),
    ) -> None:
        self.backend = backend
        self.security = security
        self.impl = impl
        self.cfg = cfg
        #: the image the node's container is made from and the server inside it
        self.image, self.server = image
        self.index = index
        self.host = ip
        self.port = PORT
        self.dir = base / f"node-{index}"
        self.dir.mkdir(parents=True)
        # the directory is mounted at /data: the server reads its certificates there
        security.issue_node_files(self.dir, [ip, backend.proxy_host()])
        self.write_config()
        self.container: Any = None  # docker.models.containers.Container
        self.state = "new"

    def write_config(self) -> None:
        """server.conf for ``self.impl`` (again after a swap: dialects differ)."""
        config = render_config(
            self.impl,
            self.cfg,
            port=PORT,
            bind="0.0.0.0",
            data_dir=images.DATA_DIR,
            security=self.security,
        )
        (self.dir / "server.conf").write_text(config)

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
            _tc_container(self.image)
            .with_volume_mapping(str(self.dir), images.DATA_DIR, "rw")
            .with_command([f"{images.DATA_DIR}/server.conf"])
            .with_name(f"rch-{be.run.id[-6:]}-{be.cluster_id}-{self.name}")
            .with_kwargs(
                entrypoint=[self.server],
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
                f"cannot start {self.name} from {self.image}: {images.reason(exc)}"
            ) from exc
        self.container = tc.get_wrapped_container()

    @property
    def alive(self) -> bool:
        """Its container runs or is paused."""
        if self.container is None:
            return False
        self._docker("inspect", self.container.reload)
        return self.container.status in ("running", "paused", "restarting")

    def replace_server(self, impl: Implementation, image: tuple[str, str]) -> None:
        """Run ``impl`` from ``image`` (image, server) at the next start: the stopped
        container goes; the next one takes its name, address and bind-mounted directory."""
        require_stopped(self, self.alive)
        if self.container is not None:
            networks = self.container.attrs["NetworkSettings"].get("Networks") or {}
            if self.backend.network_name not in networks:  # a new container would be joined
                raise HarnessError(
                    f"{self.name} {self.addr} is cut off from its network: reconnect it "
                    "before swapping its server"
                )
            self._docker("remove", self.container.remove, force=True, v=True)
            self.container = None
        self.impl = impl
        self.image, self.server = image
        self.write_config()

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
