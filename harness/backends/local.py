"""Local backend: every node is a server process on 127.0.0.1 with its own directory.

Processes start in their own session (process group), so Ctrl-C reaches the harness, not
the servers, and a wrapper script that does not ``exec`` is still signalled together with
the server it started. Each process is registered with the :class:`~harness.runs.Run`,
whose watchdog kills it if the harness dies.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness import netns
from harness.backends.base import (
    Backend,
    Node,
    NodeConfig,
    release,
    render_config,
    require_stopped,
    require_tls,
    start_all,
)
from harness.errors import HarnessError, NotSupportedError, UsageError
from harness.impl import Implementation
from harness.netns import RULE_TAG, Namespace
from harness.ports import PortLease
from harness.runs import Run
from harness.security import PLAIN, Security
from harness.wait import Hopeless, wait_for

#: open files a local node costs the harness's process (its port lock, connections
#: during a fan-out) and, inherited, each server (a link each way to every peer)
FILES_PER_NODE = 4
FILES_RESERVE = 256


def ensure_open_files(nodes: int) -> None:
    """Raise this process's soft limit on open files (servers inherit it) towards the hard
    one when ``nodes`` nodes could exceed it: a 1024 default is close on a 100-node cluster
    whose every server holds two bus links per peer."""
    need = FILES_RESERVE + FILES_PER_NODE * nodes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    target = need if hard == resource.RLIM_INFINITY else min(hard, need)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < need:
        raise HarnessError(
            f"{nodes} local nodes need about {need} open files; the hard limit is {hard} "
            "(raise it, e.g. `ulimit -Hn`, or start fewer nodes)"
        )


class LocalNode(Node):
    backend_name = "local"

    def __init__(
        self,
        run: Run,
        impl: Implementation,
        cfg: NodeConfig,
        index: int,
        port: int,
        base: Path,
        ns: Namespace | None = None,
        security: Security = PLAIN,
    ):
        self.run = run
        self.security = security
        self.impl = impl
        self.cfg = cfg
        self.index = index
        self.ns = ns
        # In a namespace every node has its own address (so packets name their node);
        # otherwise all share 127.0.0.1 with ports of their own.
        self.host = ns.add_address() if ns is not None else "127.0.0.1"
        self.port = port
        self.dir = base / f"node-{index}-{port}"
        self.dir.mkdir(parents=True)
        self.conf_path = self.dir / "server.conf"
        self.log_path = self.dir / "server.log"
        # a proxy in front of the node listens on the namespace's host address
        security.issue_node_files(self.dir, [self.host, ns.host_addr if ns else "127.0.0.1"])
        self.write_config()
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "new"

    def write_config(self) -> None:
        """server.conf for ``self.impl`` (again after a swap: dialects differ)."""
        config = render_config(
            self.impl,
            self.cfg,
            port=self.port,
            bind=self.host,
            data_dir=str(self.dir),
            security=self.security,
        )
        if self.ns is not None:  # packets to peers leave from the node's own address
            config += f"bind-source-addr {self.host}\n"
        self.conf_path.write_text(config)

    @property
    def alive(self) -> bool:
        """Its process exists (running or paused)."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def description(self) -> str:
        return f"{self.name} {self.addr} (pid {self.pid}, dir {self.dir})"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def host_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError(f"{self.name} {self.addr} is already running (pid {self.proc.pid})")
        with self.log_path.open("ab") as log:
            log.write(
                f"\n### harness: starting {self.impl.binary} at {time.strftime('%H:%M:%S')}\n".encode()
            )
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    [
                        *(self.ns.exec_prefix() if self.ns else []),
                        self.impl.binary,
                        str(self.conf_path),
                    ],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.run.env(),
                )
            except OSError as exc:
                raise HarnessError(f"cannot start {self.impl.binary}: {exc.strerror}") from exc
        self.run.register(self.proc.pid)
        self.state = "running"

    def _exited_message(self) -> str:
        assert self.proc is not None
        lines = [
            ln for ln in self.log_text(4000).splitlines() if ln.strip() and not ln.startswith("###")
        ]
        fatal = [
            ln
            for ln in lines
            if any(w in ln for w in ("FATAL", "Bad directive", ">>>", "rror", "Could not"))
        ]
        reason = " | ".join((fatal or lines)[-3:]) or "no output"
        return f"{self.name} {self.addr} exited at start-up (code {self.proc.returncode}): {reason}"

    def wait_answering(self, timeout: float) -> None:
        client = self.client(timeout=0.5)

        def pong() -> tuple[bool, str]:
            if self.proc is None or self.proc.poll() is not None:
                self._reap()
                raise Hopeless(self._exited_message())
            return self.ping(client), "no PONG"

        try:
            wait_for(pong, timeout, f"{self.name} {self.addr} answering PING", interval=0.005)
        finally:
            client.close()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError(f"{self.name} {self.addr} is not running")
        os.killpg(self.proc.pid, sig)

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of a wrapper's group
            self.proc.wait()
            self.run.unregister(self.proc.pid)
        self.state = "stopped"

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        self._reap()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.state = "paused"

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.state = "running"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._reap()
            return
        if self.state == "paused":
            self.resume()
        os.killpg(self.proc.pid, signal.SIGTERM)
        # a process stopped behind the harness's back (SIGSTOP, a debugger) gets the
        # SIGTERM only when it runs again; the wait stays bounded, then SIGKILL
        os.killpg(self.proc.pid, signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self._reap()

    def log_text(self, max_bytes: int = 20000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class LocalBackend(Backend):
    """Nodes as local processes under this process's run directory."""

    name = "local"
    one_host = True  # 127.0.0.1 by design (or one namespace address per node, same machine)
    #: what create_nodes made nodes of: add_nodes makes more alike
    _made: tuple[Implementation, NodeConfig, Path, Security]

    def __init__(self, run: Run | None = None, *, network_faults: bool = False) -> None:
        self.run = run or Run.current()
        self.lease = PortLease()
        self.nodes: list[LocalNode] = []
        self.network_faults = network_faults
        self.ns: Namespace | None = None

    def __new__(cls, run: Run | None = None, *, network_faults: bool = False) -> LocalBackend:
        # A cluster whose links can be cut lives in a namespace: another class, so the
        # ability is a type (harness.backends.base.CutsLinks), not a flag to probe.
        if cls is LocalBackend and network_faults:
            cls = NamespacedBackend
        return super().__new__(cls)

    def why_links_stay(self) -> str:
        return (
            "this local cluster has no namespace; create it with network_faults=True "
            "(or mark the test @pytest.mark.requires('network_faults'))"
        )

    def proxy_host(self) -> str:
        return self.ns.host_addr if self.ns is not None else "127.0.0.1"

    @classmethod
    def unsupported(cls, capability: str, impl: Implementation) -> str | None:
        if capability != "network_faults":
            return super().unsupported(capability, impl)
        if not impl.has("bind_source_addr"):
            return (
                f"{impl.name} lacks bind_source_addr, needed for per-node addresses in a namespace"
            )
        reason = netns.unavailable_reason()
        return f"the local backend cannot cut links here: {reason}" if reason else None

    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        # A fresh directory per cluster: a reused port must never find an old nodes.conf.
        ensure_open_files(len(self.nodes) + count)
        base = Path(tempfile.mkdtemp(prefix="cluster-", dir=self.run.dir))
        if self.network_faults:
            reason = self.unsupported("network_faults", impl)
            if reason is not None:
                raise NotSupportedError(reason)
            if ports:
                raise UsageError(
                    "fixed ports and network_faults do not mix: namespaced nodes use 6379"
                )
            self.ns = netns.Namespace(self.run)
            ports = [6379] * count  # each node has its own address in the namespace
        else:
            ports = self.lease.claim_exact(ports) if ports else self.lease.claim(count)
        self._made = (impl, cfg, base, Security.create(cfg.security, base))
        return self._start(ports)

    def _start(self, ports: list[int], impl: Implementation | None = None) -> list[Node]:
        made, cfg, base, security = self._made
        first = len(self.nodes)
        nodes = [
            LocalNode(self.run, impl or made, cfg, first + i, p, base, self.ns, security)
            for i, p in enumerate(ports)
        ]
        self.nodes.extend(nodes)
        return start_all(nodes, timeout=15)

    def add_nodes(self, count: int, impl: Implementation | None = None) -> list[Node]:
        if not self.nodes:
            raise HarnessError("add_nodes extends a cluster: create_nodes comes first")
        if impl is not None:
            self._check_fits(impl)
        ensure_open_files(len(self.nodes) + count)
        ports = [6379] * count if self.ns is not None else self.lease.claim(count)
        return self._start(ports, impl)

    def swap(self, node: Node, impl: Implementation) -> None:
        if not isinstance(node, LocalNode) or node not in self.nodes:
            raise HarnessError(f"{node!r} is not a node of this local backend")
        require_stopped(node, node.alive)
        self._check_fits(impl)
        node.impl = impl
        node.write_config()  # start() logs "### harness: starting <binary>"

    def _check_fits(self, impl: Implementation) -> None:
        """Can ``impl`` run beside this cluster's nodes, as they are set up?"""
        if impl.image is not None:
            raise UsageError(f"{impl.describe()} is an image: images run on the docker backend")
        if self.ns is not None and not impl.has("bind_source_addr"):
            raise NotSupportedError(
                f"{impl.name} lacks bind_source_addr, which nodes in a namespace need"
            )
        require_tls(impl, self._made[3])

    def close(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(n.proc.pid, signal.SIGCONT)
                    os.killpg(n.proc.pid, signal.SIGKILL)
            n._reap()
        release(self.nodes)
        self.nodes.clear()
        self.lease.release()
        if self.ns is not None:
            self.ns.close()
            self.ns = None


class NamespacedBackend(LocalBackend):
    """Local nodes in a network namespace of their own, one address each, so links
    between them can be cut with iptables rules inside it (never the host's)."""

    def _rule(self, op: str, chain: str, *match: str, check: bool = True) -> None:
        assert self.ns is not None, "nodes are created before faults are injected"
        self.ns.iptables(
            op, chain, *match, "-j", "DROP", "-m", "comment", "--comment", RULE_TAG, check=check
        )

    def block(self, target: Node, source: Node) -> None:
        self._rule("-I", "INPUT", "-s", source.host, "-d", target.host)

    def unblock(self, target: Node, source: Node) -> None:
        self._rule("-D", "INPUT", "-s", source.host, "-d", target.host, check=False)

    def cut_off(self, node: Node) -> None:
        for chain, match in (("INPUT", "-d"), ("INPUT", "-s"), ("OUTPUT", "-s")):
            self._rule("-I", chain, match, node.host)

    def reconnect(self, node: Node) -> None:
        for chain, match in (("INPUT", "-d"), ("INPUT", "-s"), ("OUTPUT", "-s")):
            self._rule("-D", chain, match, node.host, check=False)
