"""The cluster operations through the implementation's own tool (``redis-cli --cluster``),
the way operators and the redis.io tutorial run them.

Each call goes on the cluster's timeline before it runs (``ahead``: the nodes' logs get
the line first) and again with its exit status and duration; a failure raises
:class:`~harness.clitool.runner.CliError` with the tool's last lines. Nodes are named to
the tool by the address the cluster announces for them, as an operator would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from harness import wait
from harness.backends.base import Node
from harness.clitool.check import CheckVerdict, parse_check
from harness.clitool.locate import CliProgram, cli_in_image, host_cli
from harness.clitool.runner import CliError, CliRun, ContainerRunner, HostRunner
from harness.errors import HarnessError, NotSupportedError, UsageError

if TYPE_CHECKING:
    from harness.cluster import Cluster

DEFAULT_TIMEOUT = 300.0  # a reshard of many slots with keys takes a while
#: answers to the questions ``fix`` asks even with --cluster-yes (covering slots)
FIX_ANSWERS = "yes\n" * 16
#: the tools' own bugs the harness recognises in a failure: (command, last words, reference)
TOOL_ISSUES = (
    (
        "reshard",
        "ERR Please use SETSLOT only with masters.",
        "redis/redis#9223 (closed; redis-cli 7.0 tolerates it): the source lost its last slot and turned "
        "replica before the tool's SETSLOT NODE reached it; the slot did move",
    ),
    (
        "rebalance",
        "ERR Please use SETSLOT only with masters.",
        "redis/redis#11104: a master the rebalance emptied turned replica, and the tool "
        "still sends it SETSLOT as a master",
    ),
)
READ_ONLY = frozenset({"check", "info"})  # all the harness may run on someone else's cluster


def find_program(cluster: Cluster) -> CliProgram:
    """The tool that belongs to the cluster's server, where its nodes run, or
    :class:`NotSupportedError` saying why there is none."""
    be: Any = cluster.backend
    if be.name != "docker":
        return host_cli(cluster.impl)
    return cli_in_image(be.client, be.image, cluster.impl)


class ClusterCli:
    """``redis-cli --cluster ...`` (or ``valkey-cli``) on one cluster."""

    def __init__(self, cluster: Cluster, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.cluster = cluster
        self.timeout = timeout
        self.program = find_program(cluster)
        sec = cluster.security
        if cluster.backend.name == "docker":
            self.runner: HostRunner | ContainerRunner = ContainerRunner(
                self.program, sec, cluster.backend
            )
        else:
            self.runner = HostRunner(self.program, sec)

    def describe(self) -> str:
        return self.program.describe()

    # -- the commands ---------------------------------------------------------------
    def create(self, nodes: Sequence[Node] | None = None, replicas: int | None = None) -> CliRun:
        """``--cluster create`` over ``nodes`` (default: all) with ``--cluster-replicas``
        (default: the spec's) and ``--cluster-yes``: the tool picks the masters, splits
        the slots and assigns the replicas by its own anti-affinity rules."""
        nodes = list(nodes if nodes is not None else self.cluster.nodes)
        r = self.cluster.spec.replicas if replicas is None else replicas
        args = ["create", *(n.public_addr for n in nodes), "--cluster-replicas", str(r)]
        detail = f"{len(nodes)} nodes, {self.program.describe()}"
        return self.call(*args, "--cluster-yes", node="cluster", detail=detail)

    def add_node(
        self, new: Node, existing: Node | None = None, *, master: Node | None = None
    ) -> CliRun:
        """``--cluster add-node NEW EXISTING``: a new empty master, or with ``master`` a
        replica of it (``--cluster-slave --cluster-master-id``)."""
        via = existing or self._entry(exclude=new)
        args = ["add-node", new.public_addr, via.public_addr]
        if master is not None:
            args += ["--cluster-slave", "--cluster-master-id", self._id(master)]
        role = f"replica of {master.name}" if master is not None else "master"
        return self.call(*args, node=new.name, detail=role)

    def reshard(
        self,
        source: Node | Sequence[Node] | str,
        target: Node,
        slots: int,
        *,
        pipeline: int | None = None,
        via: Node | None = None,
    ) -> CliRun:
        """``--cluster reshard``: move ``slots`` slots (with their keys) from ``source``
        (a node, several, or ``"all"``) to ``target``, ``--cluster-yes``;
        ``pipeline``: keys per MIGRATE (``--cluster-pipeline``, the tool's default 10)."""
        if isinstance(source, str):
            if source != "all":
                raise UsageError(f"reshard source {source!r}: give nodes or 'all'")
            src, shown = "all", "all"
        else:
            nodes = [source] if isinstance(source, Node) else list(source)
            src = ",".join(self._id(n) for n in nodes)
            shown = ",".join(n.name for n in nodes)
        args = ["reshard", (via or self._entry()).public_addr, "--cluster-from", src]
        args += ["--cluster-to", self._id(target), "--cluster-slots", str(slots), "--cluster-yes"]
        if pipeline is not None:
            args += ["--cluster-pipeline", str(pipeline)]
        return self.call(*args, node=f"{shown}->{target.name}", detail=f"{slots} slots")

    def rebalance(
        self,
        *,
        use_empty_masters: bool = False,
        weights: Mapping[Node, float] | None = None,
        threshold: float | None = None,
        pipeline: int | None = None,
        via: Node | None = None,
    ) -> CliRun:
        """``--cluster rebalance`` (``--cluster-use-empty-masters`` to give new masters
        their share; ``weights`` per node; ``threshold`` in percent)."""
        args = ["rebalance", (via or self._entry()).public_addr]
        if weights:  # one flag, all the weights: the tool keeps only the last flag's
            args += ["--cluster-weight", *(f"{self._id(n)}={w:g}" for n, w in weights.items())]
        if use_empty_masters:
            args.append("--cluster-use-empty-masters")
        if threshold is not None:
            args += ["--cluster-threshold", f"{threshold:g}"]
        if pipeline is not None:
            args += ["--cluster-pipeline", str(pipeline)]
        shown = "use empty masters" if use_empty_masters else ""
        return self.call(*args, node="cluster", detail=shown)

    def del_node(self, node: Node, *, via: Node | None = None, stop: bool = True) -> CliRun:
        """``--cluster del-node``: every other node forgets ``node`` (which must hold no
        slots: drain it first), and the tool resets it. ``stop``: then stop it and drop it
        from ``cluster.nodes``, as it is no member any more."""
        entry = via or self._entry(exclude=node)
        result = self.call("del-node", entry.public_addr, self._id(node), node=node.name)
        if stop:
            node.stop()
            self.cluster.nodes.remove(node)
            self.cluster.record("removed", node.name, "stopped after del-node")
        return result

    def check(
        self, via: Node | None = None, *, search_multiple_owners: bool = False
    ) -> CheckVerdict:
        """``--cluster check``: the tool's verdict (a bad one is an answer, not an error;
        a check that could not run raises)."""
        entry = via or self._entry()
        args = ["check", entry.public_addr]
        if search_multiple_owners:
            args.append("--cluster-search-multiple-owners")
        result = self.call(*args, node=entry.name, expect_failure=True)
        verdict = parse_check(result.output)
        if not verdict.complete:
            raise CliError(self._failed(result, "did not finish its check"), result)
        return verdict

    def fix(self, via: Node | None = None, *, unreachable_masters: bool = False) -> CliRun:
        """``--cluster fix``: close open slots and cover uncovered ones (answering the
        questions the tool asks even with ``--cluster-yes``)."""
        entry = via or self._entry()
        args = ["fix", entry.public_addr, "--cluster-yes"]
        if unreachable_masters:
            args.append("--cluster-fix-with-unreachable-masters")
        return self.call(*args, node=entry.name, input=FIX_ANSWERS)

    # -- running ----------------------------------------------------------------------
    def call(
        self,
        command: str,
        *args: str,
        node: str = "cluster",
        detail: str = "",
        input: str | None = None,
        expect_failure: bool = False,
        timeout: float | None = None,
    ) -> CliRun:
        """``TOOL --cluster COMMAND ARGS...`` on the timeline; raises :class:`CliError`
        unless it exits 0 (or, with ``expect_failure``, unless it just finished)."""
        if not self.cluster.backend.owns_cluster and command not in READ_ONLY:
            raise UsageError(f"the harness never alters a cluster it did not start ({command})")
        action = f"{self.program.name} {command}"
        self.cluster.record(action, node, detail, ahead=True)
        wait.announce(timeout or self.timeout)  # the test's deadline: the tool's own bound
        result = self.runner.run(
            ["--cluster", command, *args], input=input, timeout=timeout or self.timeout
        )
        status = "timed out" if result.timed_out else f"exit {result.code}"
        self.cluster.record(f"{action} done", node, f"{status} in {result.duration_ms:.0f} ms")
        if result.timed_out or (result.code != 0 and not expect_failure):
            issue = next(
                (
                    ref
                    for cmd, words, ref in TOOL_ISSUES
                    if cmd == command and words in result.tail(3)
                ),
                None,
            )
            message = self._failed(result, status)
            if issue is not None:
                message += f"\n(known tool issue {issue})"
            raise CliError(message, result, known_issue=issue)
        return result

    def _failed(self, result: CliRun, what: str) -> str:
        cmd = " ".join([self.program.name, *result.args])
        return f"{cmd} {what} ({self.program.describe()}):\n{result.tail()}"

    def _entry(self, exclude: Node | None = None) -> Node:
        """A node to start from: the first live member that is not ``exclude``."""
        for n in self.cluster.live_nodes():
            if n is not exclude and n.node_id:
                return n
        raise HarnessError("no live node to run the cluster tool against")

    @staticmethod
    def _id(node: Node) -> str:
        if not node.node_id:
            raise HarnessError(f"{node.name} {node.addr} has no node id yet")
        return node.node_id


def cli_for(cluster: Cluster) -> ClusterCli:
    """The cluster's tool, or :class:`NotSupportedError` (a skip) when there is none."""
    return ClusterCli(cluster)


def second_opinion(cluster: Cluster) -> CheckVerdict | None:
    """``--cluster check`` by the implementation's own tool, for code to call after
    every operation next to the harness's own checkers; None when no such tool exists
    here (the reason is :func:`cli_unavailable`)."""
    try:
        tool = ClusterCli(cluster)
    except NotSupportedError:
        return None
    return tool.check()


def cli_unavailable(cluster: Cluster) -> str | None:
    """Why the cluster has no tool of its own here (None: it has one)."""
    try:
        find_program(cluster)
    except NotSupportedError as exc:
        return str(exc)
    return None
