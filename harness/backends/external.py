"""External backend: a running cluster the harness did not start (``--backend external
--nodes HOST:PORT,...``), checked before an upgrade, say.

The harness owns nothing here, so it promises three things:

- it talks only to the addresses given in ``--nodes``. Topology is read from those nodes
  alone, and every node the cluster reports must be named there, by the address the
  cluster announces for it (what ``CLUSTER NODES`` shows and ``MOVED`` names: clients
  follow redirections to it). Anything else is refused in one line, and every connection
  the harness makes is checked against the names (:mod:`harness.guard`);
- it never forms, resets, flushes or reconfigures the cluster: attaching only reads
  (``PING``, ``INFO``, ``CLUSTER NODES``), and tests that change the cluster are
  ``destructive`` and skipped unless ``--allow-destructive`` is given;
- it cannot kill, pause, restart or cut off processes it did not start: those faults
  raise :class:`~harness.errors.NotSupportedError`, which the plugin reports as a skip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import redis

from harness import guard
from harness import impl as impls
from harness.advisories import startup_nodes
from harness.backends.access import greet
from harness.backends.base import Backend, Node, NodeConfig, control_client
from harness.errors import HarnessError, NotSupportedError, UsageError
from harness.impl import Implementation
from harness.runs import Run
from harness.security import PLAIN, Security
from harness.topology import NodeEntry, parse_cluster_nodes, parse_info

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")

#: why a destructive test does not run on an external cluster by default
DESTRUCTIVE_SKIP = "external cluster: destructive; pass --allow-destructive to run it"


def parse_nodes(text: str) -> list[tuple[str, int]]:
    """``--nodes`` text (``HOST:PORT,HOST:PORT``) to (host, port) pairs; a malformed entry
    raises a one-line :class:`UsageError` naming it."""
    out: list[tuple[str, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        m = _HOST_PORT.match(item)
        port = int(m.group("port")) if m else 0
        if m is None or not 1 <= port <= 65535:
            raise UsageError(
                f"--nodes {text!r}: {item!r} is not HOST:PORT (port 1..65535); "
                "give e.g. 10.0.0.1:6379,10.0.0.2:6379"
            )
        pair = (m.group("host").strip("[]"), port)
        if pair in out:
            raise UsageError(f"--nodes {text!r}: {item} is named twice")
        out.append(pair)
    return out


def check_options(backend: str, nodes: str | None) -> list[tuple[str, int]]:
    """``--backend`` and ``--nodes`` go together: the external backend needs the nodes,
    every other backend starts its own and refuses them."""
    if backend == "external":
        if not nodes:
            raise UsageError(
                "--backend external needs --nodes HOST:PORT,... (every node of the cluster)"
            )
        return parse_nodes(nodes)
    if nodes:
        raise UsageError(
            f"--nodes is for --backend external; the {backend} backend starts its own nodes"
        )
    return []


class ExternalNode(Node):
    """A node of someone else's cluster: reachable over the wire, never signalled."""

    backend_name = "external"

    def __init__(
        self, index: int, host: str, port: int, node_id: str, security: Security = PLAIN
    ) -> None:
        self.index = index
        self.host = host
        self.port = port
        self.node_id = node_id
        self.state = "running"
        self.security = security

    @property
    def description(self) -> str:
        return f"{self.name} {self.addr} (external, id {(self.node_id or '?')[:8]})"

    def _refuse(self, what: str) -> NoReturn:
        raise NotSupportedError(
            f"external cluster: the harness did not start {self.addr} and cannot {what} it"
        )

    def start(self) -> None:
        self._refuse("start")

    def wait_answering(self, timeout: float) -> None:
        self.call("PING", timeout=timeout)

    def kill(self) -> None:
        self._refuse("kill")

    def pause(self) -> None:
        self._refuse("pause")

    def resume(self) -> None:
        self._refuse("resume")

    def stop(self, timeout: float = 10.0) -> None:
        self._refuse("stop")

    def log_text(self, max_bytes: int = 20000) -> str:
        return ""  # the server's log is wherever its operators keep it


@dataclass(frozen=True)
class Discovery:
    """What the named nodes say about their cluster: the nodes (masters first, in slot
    order, then replicas), the master of each replica, and the server they run."""

    nodes: tuple[ExternalNode, ...]
    master_of: dict[str, str]  # replica node id -> master node id
    info_server: dict[str, str]
    node_timeout_ms: int | None

    @property
    def masters(self) -> list[ExternalNode]:
        return [n for n in self.nodes if n.node_id not in self.master_of]

    @property
    def replicas(self) -> list[ExternalNode]:
        return [n for n in self.nodes if n.node_id in self.master_of]

    def shape(self) -> tuple[int, int]:
        """(masters, replicas per master); the fewest replicas any master has."""
        masters = self.masters
        per = [sum(1 for m in self.master_of.values() if m == x.node_id) for x in masters]
        return len(masters), min(per, default=0)

    def uneven(self) -> bool:
        masters = self.masters
        per = {sum(1 for m in self.master_of.values() if m == x.node_id) for x in masters}
        return len(per) > 1


def _ask(host: str, port: int, sec: Security, *args: object) -> str:
    """One read-only command to a named node; failures become one line naming it."""
    try:
        with control_client(host, port, 3.0, sec) as c:
            return str(c.execute_command(*args))
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise HarnessError(f"--nodes: {host}:{port} is unreachable ({exc})") from None
    except redis.exceptions.RedisError as exc:
        raise HarnessError(f"--nodes: {host}:{port} refused {args[0]}: {exc}") from None


def discover(named: Sequence[tuple[str, int]], sec: Security = PLAIN) -> Discovery:
    """Read the cluster from the named nodes only (with the credentials and TLS files of
    ``sec``), and check the rule that every node it reports is named by the address it
    announces. Sends nothing but AUTH and reads. The named addresses are allowed
    (:mod:`harness.guard`) for the rest of the process: the user named them."""
    guard.allow(guard.NAMED, named)
    ids: dict[tuple[str, int], str] = {}
    views: dict[tuple[str, int], list[NodeEntry]] = {}
    info_server: dict[str, str] = {}
    for host, port in named:
        greet(host, port, sec)
        info = parse_info(_ask(host, port, sec, "INFO", "cluster"))
        if info.get("cluster_enabled") != "1":
            raise UsageError(
                f"--nodes: {host}:{port} is not in cluster mode (cluster_enabled:"
                f"{info.get('cluster_enabled', '?')}); the harness checks Redis Cluster nodes only"
            )
        entries = parse_cluster_nodes(_ask(host, port, sec, "CLUSTER", "NODES"))
        me = next((e for e in entries if e.is_myself), None)
        if me is None:
            raise HarnessError(f"--nodes: {host}:{port} lists no 'myself' in CLUSTER NODES")
        ids[(host, port)] = me.node_id
        views[(host, port)] = entries
        if not info_server:
            info_server = parse_info(_ask(host, port, sec, "INFO", "server"))
    by_id = {i: hp for hp, i in ids.items()}
    for (host, port), entries in views.items():
        for e in entries:
            where = by_id.get(e.node_id)
            if where is None:
                # --nodes is also the harness's client configuration: too few startup
                # nodes is advice the tutorial gives too (harness.advisories)
                few = startup_nodes(len(named), sum(1 for x in entries if x.is_master and x.slots))
                raise UsageError(
                    f"--nodes: {host}:{port} reports node {e.addr} (id {e.node_id[:8]}, "
                    f"{'replica' if e.is_replica else 'master'}) that is not in --nodes; "
                    "name every node of the cluster (the harness talks to no other address)"
                    + (f". Advisory {few}" if few else "")
                )
            # a node never met by another does not know its address yet (empty host)
            if e.is_myself and e.host and (e.host, e.port) != where:
                raise UsageError(
                    f"--nodes: {where[0]}:{where[1]} announces itself as {e.addr}; name it "
                    "that way (clients follow redirections to announced addresses)"
                )
    first = views[named[0]]
    entry = {e.node_id: e for e in first}
    for (host, port), i in ids.items():
        if i not in entry:
            raise UsageError(
                f"--nodes: {host}:{port} is not a member of the cluster of "
                f"{named[0][0]}:{named[0][1]}; name the nodes of one cluster"
            )
    master_of = {e.node_id: e.master_id for e in first if e.is_replica and e.master_id}
    masters = sorted(
        (i for i in ids.values() if i not in master_of),
        key=lambda i: (not entry[i].slots, entry[i].slots[:1]),
    )
    rank = {m: i for i, m in enumerate(masters)}
    replicas = sorted(master_of, key=lambda r: (rank.get(master_of[r], len(rank)), entry[r].addr))
    order = enumerate([*masters, *replicas])
    nodes = tuple(ExternalNode(k, *by_id[i], i, sec) for k, i in order)
    timeout = _node_timeout(*named[0], sec)
    return Discovery(nodes, master_of, info_server, timeout)


def _node_timeout(host: str, port: int, sec: Security) -> int | None:
    """``cluster-node-timeout`` if ``CONFIG GET`` is allowed (managed services rename it)."""
    try:
        with control_client(host, port, 2.0, sec) as c:
            reply = c.execute_command("CONFIG", "GET", "cluster-node-timeout")
    except redis.exceptions.RedisError:
        return None
    values = list(reply.values()) if isinstance(reply, dict) else list(reply)[1:]
    return int(values[0]) if values and str(values[0]).isdigit() else None


def identify(info_server: dict[str, str], addr: str, name: str | None = None) -> Implementation:
    """The implementation a node says it runs (``INFO server``), matched to a profile;
    ``--impl NAME`` must agree with it."""
    if "valkey_version" in info_server:
        flavor, text = "valkey", info_server["valkey_version"]
    else:
        flavor = info_server.get("server_name", "redis").lower()
        text = info_server.get("redis_version", "")
    if not text:
        raise HarnessError(f"--nodes: {addr} reports no version in INFO server")
    version = impls.parse_version(text)
    profiles = impls.load_profiles()
    match = next((p for p in profiles.values() if p.matches(flavor, version)), None)
    if match is None:
        known = ", ".join(f"{p.name} ({p.flavor} {p.versions})" for p in profiles.values())
        raise UsageError(
            f"--nodes: {addr} runs {flavor} {text}, which matches no profile; known: {known}"
        )
    if name is not None and name != match.name:
        raise UsageError(
            f"--impl {name}: the cluster at {addr} runs {flavor} {text} (profile {match.name})"
        )
    return Implementation(match, f"external {addr}", flavor, version, f"{flavor} {text}")


class ExternalBackend(Backend):
    """Nodes the harness attaches to and never owns: :meth:`close` releases nothing."""

    name = "external"
    owns_cluster = False

    def __init__(self, run: Run | None = None, *, network_faults: bool = False) -> None:
        if network_faults:
            raise NotSupportedError(self.why_links_stay())

    def why_links_stay(self) -> str:
        return "external cluster: the harness did not start these nodes and cannot cut their links"

    @classmethod
    def unsupported(cls, capability: str, impl: Implementation) -> str | None:
        return f"external cluster: the harness did not start the nodes, so it has no {capability}"

    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        raise UsageError(
            "the external backend attaches to a running cluster (`run --backend external "
            "--nodes ...`); it starts no nodes"
        )

    def close(self) -> None:
        """Nothing to release: the nodes keep running, as they were."""


def preflight(
    named: Sequence[tuple[str, int]], name: str | None = None, sec: Security = PLAIN
) -> Implementation:
    """Check the rules above against the named nodes and identify their server: what
    ``run`` and the plugin do before any test, so bad input is one line up front."""
    found = discover(named, sec)
    first = found.nodes[0]
    return identify(found.info_server, first.addr, name)
