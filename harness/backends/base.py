"""The contract between the cluster logic and whatever runs the nodes."""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from harness import guard
from harness.errors import HarnessError, NotSupportedError
from harness.impl import Implementation
from harness.ports import BUS_OFFSET
from harness.runs import Run
from harness.security import PLAIN, Security, SecuritySpec, refusal, tls_unsupported

Persistence = Literal["none", "rdb", "aof"]
PERSISTENCE: tuple[Persistence, ...] = ("none", "rdb", "aof")


@dataclass(frozen=True)
class NodeConfig:
    """Settings shared by every node of a cluster."""

    node_timeout_ms: int = 2000
    persistence: Persistence = "none"
    server_args: Mapping[str, str] = field(default_factory=dict)
    security: SecuritySpec = field(default_factory=SecuritySpec)


def render_config(
    impl: Implementation,
    cfg: NodeConfig,
    *,
    port: int,
    bind: str,
    data_dir: str,
    security: Security = PLAIN,
) -> str:
    """A server config file for one node, in the dialect of ``impl``; ``port`` is the TLS
    port of a TLS node (its plain port is off), ``data_dir`` as the server sees it."""
    lines = [
        *security.server_lines(port, data_dir, impl.version),
        f"bind {bind}",
        "protected-mode no",
        "daemonize no",
        'logfile ""',  # stdout, which the backend captures into the node's log
        f"dir {data_dir}",
        "cluster-enabled yes",
        "cluster-config-file nodes.conf",
        f"cluster-node-timeout {cfg.node_timeout_ms}",
        "cluster-require-full-coverage yes",
        # Replicas must finish their first sync quickly: the default 5 s delay makes
        # a cluster look ready long before a replica could take over.
        "repl-diskless-sync yes",
        "repl-diskless-sync-delay 0",
    ]
    if cfg.persistence == "none":
        lines += ['save ""', "appendonly no"]
    elif cfg.persistence == "rdb":
        lines += ["save 1 1", "appendonly no"]
    else:  # aof: every acknowledged write is on disk before the reply
        lines += ['save ""', "appendonly yes", "appendfsync always"]
    if impl.has("debug_command"):
        lines.append("enable-debug-command yes")
    for key, value in cfg.server_args.items():
        lines.append(f"{key} {value}")
    return "\n".join(lines) + "\n"


def control_client(
    host: str, port: int, timeout: float = 2.0, security: Security = PLAIN
) -> redis.Redis:
    """A plain client for harness control traffic: raw replies, no retries, short timeouts,
    so a dead or paused node shows up as an error instead of a hang; with the cluster's
    credentials and TLS settings; refusing addresses not allowed (:mod:`harness.guard`)."""
    client = redis.Redis(
        host=host,
        port=port,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 1.0),
        retry=Retry(NoBackoff(), 0),
        single_connection_client=False,
        **security.redis_kwargs(),
    )
    client.response_callbacks.clear()
    return guard.guard_client(client)


class Node(abc.ABC):
    """One server of a cluster, wherever it runs."""

    index: int
    host: str  # address clients and peers use
    port: int
    state: Literal["new", "running", "paused", "stopped"] = "new"
    node_id: str | None = None
    backend_name: str = "?"
    #: (host, port) the node announces when its traffic goes through proxies
    announce: tuple[str, int] | None = None
    #: credentials and TLS files of the node's cluster (:mod:`harness.security`)
    security: Security = PLAIN
    #: the server this node runs from its next start: nodes of one cluster may differ
    #: (:meth:`Backend.add_nodes` with ``impl``, :meth:`Backend.swap`: rolling upgrades)
    impl: Implementation

    @property
    def public_host(self) -> str:
        """Where clients and peers reach the node: its proxy if proxied, else itself."""
        return self.announce[0] if self.announce else self.host

    @property
    def public_port(self) -> int:
        return self.announce[1] if self.announce else self.port

    @property
    def public_addr(self) -> str:
        """The address the cluster announces for this node (what MOVED names)."""
        return f"{self.public_host}:{self.public_port}"

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def name(self) -> str:
        return f"n{self.index}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.addr} {self.state}>"

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return control_client(self.host, self.port, timeout, self.security)

    def ping(self, client: redis.Redis) -> bool:
        """One PING for a readiness wait: refused credentials end the wait at once
        (:class:`~harness.wait.Hopeless`, one line), other errors propagate."""
        from harness.wait import Hopeless

        try:
            return client.execute_command("PING") in ("PONG", b"PONG", True)  # type: ignore[no-untyped-call]
        except (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError) as exc:
            raise Hopeless(refusal(f"{self.name} {self.addr}", exc)) from None

    def call(self, *args: object, timeout: float = 2.0) -> object:
        """Run one command on this node and return the raw reply."""
        with self.client(timeout) as c:
            return c.execute_command(*args)

    def config_get(self, name: str) -> str | None:
        """One config value (``CONFIG GET`` replies as a list or a map, by client version)."""
        reply = self.call("CONFIG", "GET", name)
        if isinstance(reply, dict):
            value = reply.get(name)
        elif isinstance(reply, list | tuple) and len(reply) >= 2:
            value = reply[1]
        else:
            value = None
        return None if value is None else str(value)

    @abc.abstractmethod
    def start(self) -> None:
        """Start (or restart) the server, keeping its data directory; returns once the
        process runs. Use :meth:`wait_answering` to wait until it serves."""

    @abc.abstractmethod
    def wait_answering(self, timeout: float) -> None:
        """Wait until the server answers PING; raise with its log tail if it died."""

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save."""

    @abc.abstractmethod
    def pause(self) -> None:
        """Freeze the process (SIGSTOP or cgroup freezer): it keeps its sockets open."""

    @abc.abstractmethod
    def resume(self) -> None:
        """Undo :meth:`pause`."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM), killing it if it does not exit in ``timeout``."""

    @abc.abstractmethod
    def log_text(self, max_bytes: int = 20000) -> str:
        """The tail of the node's log."""

    def host_pid(self) -> int | None:
        """The server's pid as this host sees it, while it runs (None if unknown)."""
        return None

    def process_state(self) -> str:
        """How the OS sees the server process: for messages about a node that does not
        answer (busy, blocked in the kernel, stopped, gone)."""
        pid = self.host_pid()
        return "no running process" if pid is None else describe_pid(pid)

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """Where the node runs (for messages and reports)."""


def describe_pid(pid: int) -> str:
    """``pid 12 state S (wchan ep_poll), cpu 1.52 s, 5 threads`` from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return f"pid {pid} gone"
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    state, utime, stime, threads = fields[0], int(fields[11]), int(fields[12]), fields[17]
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
    except OSError:
        wchan = "?"
    cpu = (utime + stime) / os.sysconf("SC_CLK_TCK")
    return f"pid {pid} state {state} (wchan {wchan}), cpu {cpu:.2f} s, {threads} threads"


def start_all(nodes: Sequence[Node], timeout: float) -> list[Node]:
    """Start every node first, then wait for each: the servers' start-up delays overlap.
    Each node's address is allowed from here on (the readiness waits connect to it while
    it comes up) until its backend closes (:func:`release`); its bus port too, which the
    proxies of a proxied cluster forward to."""
    for n in nodes:
        guard.allow(n, [(n.host, n.port), (n.host, n.port + BUS_OFFSET)])
    for n in nodes:
        n.start()
    for n in nodes:
        n.wait_answering(timeout)
    return list(nodes)


def require_stopped(node: Node, alive: bool) -> None:
    """Refuse to swap the server of a node that runs or is paused (``alive``: its process
    or container exists, whatever the node's state says)."""
    if alive or node.state in ("running", "paused"):
        what = node.state if node.state in ("running", "paused") else "still running"
        raise HarnessError(f"{node.name} {node.addr} is {what}: stop it before swapping its server")


def require_tls(impl: Implementation, security: Security) -> None:
    """Refuse a server that cannot join a TLS cluster (no TLS built in), as
    :meth:`harness.cluster.Cluster.start` does; an image's server is not checked here."""
    if security.tls and impl.image is None and (reason := tls_unsupported(impl.binary)):
        raise NotSupportedError(reason)


def release(nodes: Sequence[Node]) -> None:
    """The harness may no longer connect to these nodes (their backend closed)."""
    guard.revoke(*nodes)


@runtime_checkable
class CutsLinks(Protocol):
    """A backend that can cut network links between its nodes (containers; a local
    cluster in its own namespace). Primitives only: which links are cut is the faults
    layer's state (:mod:`harness.faults.network`)."""

    def cut_off(self, node: Node) -> None:
        """Cut the node off from every peer and client (it keeps running)."""

    def reconnect(self, node: Node) -> None:
        """Undo :meth:`cut_off`."""

    def block(self, target: Node, source: Node) -> None:
        """Drop every packet that arrives at ``target`` from ``source``."""

    def unblock(self, target: Node, source: Node) -> None:
        """Undo :meth:`block` (a no-op when the rule is gone with a restarted node)."""


class Backend(abc.ABC):
    """Creates nodes and owns their lifetime."""

    name: str
    #: False for a cluster someone else runs (the external backend): the harness must
    #: leave it as it found it (no log lines written into it, workload keys removed)
    owns_cluster: bool = True
    #: every node runs on this one machine whatever its address (the local backend), so
    #: addresses say nothing about hosts (:mod:`harness.advisories`)
    one_host: bool = False

    @abc.abstractmethod
    def __init__(self, run: Run | None = None, *, network_faults: bool = False) -> None:
        """``network_faults``: set up the nodes so links between them can be cut."""

    def why_links_stay(self) -> str:
        """Why network faults cannot be applied to this backend's nodes (it is not
        :class:`CutsLinks`), in one line that says what to do instead."""
        return f"the {self.name} backend cannot cut links between nodes"

    def proxy_host(self) -> str:
        """An address of this host that both the nodes and the harness reach: where
        proxies in front of the nodes listen."""
        return "127.0.0.1"

    @classmethod
    def unsupported(cls, capability: str, impl: Implementation) -> str | None:
        """Why this backend cannot offer ``capability`` (e.g. "network_faults") for
        ``impl`` here, or None if it can. Tests requiring it are skipped with the reason."""
        return f"the {cls.name} backend lacks {capability}"

    @abc.abstractmethod
    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        """Create and start ``count`` nodes (not yet joined into a cluster)."""

    def add_nodes(self, count: int, impl: Implementation | None = None) -> list[Node]:
        """Create and start ``count`` more nodes like those of :meth:`create_nodes` (same
        settings, credentials, network; next indexes), not yet joined: scaling out. They
        run ``impl`` if given (new-version replicas of a rolling upgrade), else the
        implementation of :meth:`create_nodes`."""
        raise NotSupportedError(f"the {self.name} backend cannot add nodes")

    def swap(self, node: Node, impl: Implementation) -> None:
        """From its next :meth:`Node.start`, the stopped ``node`` runs ``impl``: a rolling
        upgrade's restart on a new binary or image. It keeps its data directory (RDB/AOF,
        ``nodes.conf``), address, port and credentials; its config is rendered anew in
        ``impl``'s dialect. Raises :class:`HarnessError` if the node runs or is paused."""
        raise NotSupportedError(f"the {self.name} backend cannot swap a node's server")

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every node and release every resource this backend created."""
