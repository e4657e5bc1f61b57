"""The docker backend on real containers: bring-up, process and network faults, the
pytest marker for network faults, leak-proofing, bad input and the image CLI.

Every container and network the harness creates carries ``org.redis-cluster-harness.run``
and ``org.redis-cluster-harness.owner=<pid>:<start time>``. Tests that run the harness in
a subprocess (own ``HARNESS_STATE_DIR``, unique ``LEAKTEST`` marker in its environment)
look for leftovers by that subprocess's run id and owner label with ``docker ps -a`` and
``docker network ls``, so clusters of other harness runs on the same daemon never count.
In-process tests check the same for this process after each test. The whole module is
skipped when Docker is not reachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from sandbox import (
    PYTEST,
    Spawned,
    assert_one_line_cli_error,
    assert_pytest_usage_error,
    communicate,
    lines,
    outcome,
    poll_until,
)
from sandbox import Sandbox as BaseSandbox

from harness import Cluster, ClusterSpec, checkers, key_for_slot, key_slot
from harness import impl as impls
from harness.backends import Node
from harness.errors import HarnessError, NotSupportedError
from harness.history import Event
from harness.impl import Implementation
from harness.runs import proc_start_time
from harness.wait import wait_for

try:
    from harness import images
    from harness.backends.docker import PORT, RULE_TAG
    from harness.backends.docker_resources import LABEL_OWNER, LABEL_RUN, remove_resources

    images.docker_client().close()
except (ImportError, HarnessError) as exc:
    pytest.skip(f"needs a reachable Docker: {exc}", allow_module_level=True)

START_TIMEOUT = 90.0  # an inner pytest until its cluster is ready (normally ~3 s)
GONE_TIMEOUT = 15.0  # how long the watchdog or a sweep may take to remove a run
POLL_S = 0.05  # waits for leftovers poll this often
RUN_TIMEOUT = 120  # a whole `python -m harness ...` or inner pytest
REJOIN_TIMEOUT = 30.0  # a healed node back as a synced replica (normally ~2 s)


# -- helpers: docker, clusters --------------------------------------------------------------


def docker_names(kind: str, label: str) -> list[str]:
    """Names of containers (``docker ps -a``) or networks (``docker network ls``) that carry
    ``label`` (``KEY=VALUE``)."""
    if kind == "container":
        cmd = ["docker", "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"]
    else:
        cmd = ["docker", "network", "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split()


def labelled(*labels: str) -> list[str]:
    """Every container and network carrying any of ``labels``."""
    found = {
        f"{kind} {name}"
        for label in labels
        for kind in ("container", "network")
        for name in docker_names(kind, label)
    }
    return sorted(found)


def owner_label(pid: int, start: str | None) -> str:
    return f"{LABEL_OWNER}={pid}:{start}"


MY_OWNER = owner_label(os.getpid(), proc_start_time(os.getpid()))


@pytest.fixture(autouse=True)
def nothing_of_this_process_left() -> Iterator[None]:
    """After each test: no container or network owned by this pytest process."""
    yield
    left = labelled(MY_OWNER)
    if left:
        with contextlib.closing(images.docker_client()) as client:
            remove_resources(client, {LABEL_OWNER: MY_OWNER.partition("=")[2]})
    assert not left, f"left behind by this process: {left}"


@pytest.fixture(scope="module")
def one_impl() -> Implementation:
    """One installed verified implementation, for tests that do not compare them."""
    for name in ("redis-7.0", "valkey-8.0", "redis-6.2"):
        found = impls.available(name)
        if found is not None:
            return found
    pytest.skip("no verified server is installed (run scripts/setup-system.sh)")


def container(node: Node) -> Any:
    """The node's container, freshly inspected."""
    c = node.container  # type: ignore[attr-defined]
    c.reload()
    return c


def container_ip(cluster: Cluster, node: Node) -> str | None:
    nets = container(node).attrs["NetworkSettings"]["Networks"] or {}
    entry = nets.get(cluster.backend.network_name)  # type: ignore[attr-defined]
    return entry["IPAddress"] if entry else None


def input_rules(node: Node) -> str:
    """``iptables -S INPUT`` in the node's network namespace."""
    pid = container(node).attrs["State"]["Pid"]
    assert pid, f"{node.name} has no running process"
    cmd = ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "-S", "INPUT"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout


def harness_rules(node: Node) -> list[str]:
    return [ln for ln in input_rules(node).splitlines() if RULE_TAG in ln]


def dropped_packets(node: Node, source: Node) -> int:
    """Packets the harness's DROP rule for ``source`` has dropped at ``node``."""
    pid = container(node).attrs["State"]["Pid"]
    cmd = ["nsenter", "-t", str(pid), "-n", "iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if RULE_TAG in line and "DROP" in fields and source.host in fields:
            return int(fields[0])
    raise AssertionError(f"no drop rule for {source.host} at {node.name}:\n{out}")


def wait_flagged_fail(cluster: Cluster, target: Node, others: list[Node], within: float) -> None:
    """Wait until every node of ``others`` flags ``target`` as failed."""

    def flagged() -> tuple[bool, str]:
        flags = {}
        for o in others:
            entry = cluster.view(o, with_shards=False).by_id().get(target.node_id or "")
            flags[o.name] = sorted(entry.flags) if entry else ["unknown"]
        return all("fail" in f for f in flags.values()), str(flags)

    wait_for(flagged, within, f"{target.name} flagged fail by every other node")


def wait_promoted(
    cluster: Cluster, node: Node, slots: tuple[Any, ...], instead_of: Node, within: float
) -> None:
    """Wait until ``node`` is a master owning ``slots`` (those of ``instead_of``) by its own
    view."""

    def serves() -> tuple[bool, str]:
        me = cluster.view(node, with_shards=False).myself
        ok = me is not None and me.is_master and me.slots == slots
        return (
            ok,
            f"{node.name}: {sorted(me.flags) if me else None} slots {me.slots if me else None}",
        )

    wait_for(serves, within, f"{node.name} promoted in place of {instead_of.name}")


def wait_rejoined_as_replica(cluster: Cluster, node: Node, master: Node) -> None:
    """Wait until ``node`` is a replica of ``master`` with its sync finished, and the
    cluster is ready and passes its checks."""

    def replica_of() -> tuple[bool, str]:
        me = cluster.view(node, with_shards=False).myself
        rep = cluster.replication_info(node)
        ok = (
            me is not None
            and me.is_replica
            and me.master_id == master.node_id
            and rep.get("master_link_status") == "up"
            and rep.get("master_sync_in_progress") == "0"
        )
        flags = sorted(me.flags) if me else None
        return ok, f"{node.name}: {flags} of {me.master_id if me else None}, {rep}"

    wait_for(replica_of, REJOIN_TIMEOUT, f"{node.name} back as a replica of {master.name}")
    cluster.wait_ready(REJOIN_TIMEOUT)
    assert cluster.check().ok


def left_of(ev: Event, bound_s: float) -> float:
    """Seconds left of ``bound_s`` counted from the fault ``ev``."""
    return max(0.1, bound_s - (time.monotonic_ns() - ev.t_ns) / 1e9)


def failover_roles(
    cluster: Cluster, master: Node
) -> tuple[Node, Node, list[Node], tuple[Any, ...]]:
    """``master``, its initial replica, every other node, and the slots ``master`` owns."""
    replica = next(r for r in cluster.initial_replicas if cluster.initial_master_of(r) is master)
    others = [n for n in cluster.nodes if n is not master]
    slots = cluster.view(master, with_shards=False).myself.slots  # type: ignore[union-attr]
    return master, replica, others, slots


# -- 1. bring-up ------------------------------------------------------------------------------


def test_bringup_on_containers(any_impl: Implementation) -> None:
    spec = ClusterSpec(masters=3, replicas=1, node_timeout_ms=1000)
    with Cluster.start(any_impl, spec, backend="docker") as c:
        assert c.backend.name == "docker"
        snap = c.snapshot()
        verdict = checkers.healthy(snap)
        assert verdict.ok, f"{verdict}\n{snap.describe()}"

        # Every node is its own container at its own address on the cluster network,
        # listening on 6379, and the cluster knows it by that address.
        net = c.backend.network_name  # type: ignore[attr-defined]
        hosts = [n.host for n in c.nodes]
        assert len(set(hosts)) == len(c.nodes), hosts
        assert len({container(n).id for n in c.nodes}) == len(c.nodes)
        for n in c.nodes:
            assert n.port == PORT == 6379
            assert container(n).status == "running"
            assert container_ip(c, n) == n.host, (
                f"{n.name}: {container(n).attrs['NetworkSettings']}"
            )
            assert not n.host.startswith("127."), n.host
            labels = container(n).labels
            assert labels[LABEL_RUN] == c.backend.run.id  # type: ignore[attr-defined]
            assert f"{LABEL_OWNER}={labels[LABEL_OWNER]}" == MY_OWNER
        announced = {e.addr for e in c.view(c.nodes[0], with_shards=False).nodes}
        assert announced == {n.addr for n in c.nodes}, announced
        assert docker_names("network", MY_OWNER) == [net]

        # A node redirects to the owner's container address ...
        slot = 16000
        owner = c.owner_of_slot(slot)
        other = next(m for m in c.initial_masters if m is not owner)
        with pytest.raises(redis.exceptions.MovedError) as moved:
            other.call("GET", key_for_slot(slot, prefix="moved:"))
        assert (moved.value.slot_id, moved.value.node_addr) == (slot, (owner.host, PORT))

        # ... and a cluster client reaches every master there.
        client = c.client()
        keys = [f"key:{i}" for i in range(200)]
        for k in keys:
            assert client.set(k, f"v-{k}")
        owners = {c.owner_of_slot(key_slot(k)).name for k in keys}
        assert owners == {m.name for m in c.initial_masters}, owners
        assert [client.get(k) for k in keys] == [f"v-{k}" for k in keys]
        assert sum(int(m.call("DBSIZE")) for m in c.initial_masters) == len(keys)  # type: ignore[call-overload]


# -- 2. process faults --------------------------------------------------------------------


def test_process_faults_on_containers(one_impl: Implementation) -> None:
    spec = ClusterSpec(masters=1, replicas=0, persistence="aof")
    with Cluster.start(one_impl, spec, backend="docker") as c:
        (n,) = c.nodes
        faults = c.faults
        cid, node_id = container(n).id, n.node_id

        def same_container() -> None:
            assert container(n).id == cid
            assert container(n).status == "running"
            assert container_ip(c, n) == n.host
            assert n.call("CLUSTER", "MYID") == node_id
            assert (n.dir / "nodes.conf").is_file()  # type: ignore[attr-defined]

        def value_of(key: str) -> tuple[bool, object]:
            value = n.call("GET", key, timeout=0.5)  # CLUSTERDOWN until the state is ok
            return value is not None, value

        # acknowledged before any fault (appendfsync always): must survive all of them
        assert n.call("SET", "acked", "kept") == "OK"

        # pause: the container is frozen and PING times out; resume undoes it
        faults.pause(n)
        assert n.state == "paused" and container(n).status == "paused"
        with pytest.raises(redis.exceptions.TimeoutError):
            n.call("PING", timeout=0.3)
        faults.resume(n)
        assert n.state == "running" and container(n).status == "running"
        assert n.call("PING") == "PONG"

        # kill: the container exits by SIGKILL; start brings back the same one
        faults.kill(n)
        assert n.state == "stopped"
        assert container(n).status == "exited"
        assert container(n).attrs["State"]["ExitCode"] == 137
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            n.call("PING", timeout=0.5)
        faults.start(n)
        same_container()

        # crash_restart with AOF: the acknowledged write is still there
        faults.crash_restart(n)
        same_container()
        assert wait_for(lambda: value_of("acked"), 15, "key after crash_restart") == "kept"

        # stop: graceful, exit status 0; start and restart keep container, address and data
        faults.stop(n)
        assert n.state == "stopped"
        assert container(n).status == "exited"
        assert container(n).attrs["State"]["ExitCode"] == 0
        faults.start(n)
        same_container()
        faults.restart(n)
        same_container()
        assert wait_for(lambda: value_of("acked"), 15, "key after restart") == "kept"

        with pytest.raises(HarnessError, match="running; stop or kill it"):
            faults.start(n)
        actions = [e.action for e in c.events]
        for a in ("pause", "resume", "kill", "start", "stop"):
            assert a in actions, actions
        c.wait_ready(20)
        assert c.check().ok


# -- 3. network faults ----------------------------------------------------------------------


def test_isolated_master_fails_over_and_rejoins_as_replica(one_impl: Implementation) -> None:
    spec = ClusterSpec(masters=3, replicas=1, node_timeout_ms=1000)
    with Cluster.start(one_impl, spec, backend="docker") as c:
        master, replica, others, slots = failover_roles(c, c.initial_masters[0])
        bound = spec.failover_bound_ms() / 1000

        ev = c.faults.isolate(master)
        assert master in c.faults.isolated_nodes and master not in c.live_nodes()
        assert container_ip(c, master) is None, "still on the cluster network"
        assert container(master).status == "running"  # cut off, not stopped
        with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            master.call("PING", timeout=0.5)
        wait_flagged_fail(c, master, others, left_of(ev, bound))
        wait_promoted(c, replica, slots, master, left_of(ev, bound))

        c.faults.rejoin(master)
        assert master not in c.faults.isolated_nodes and master in c.live_nodes()
        assert container_ip(c, master) == master.host  # same address as before
        wait_rejoined_as_replica(c, master, replica)


def test_drop_is_one_way_and_heal_removes_the_rules(one_impl: Implementation) -> None:
    spec = ClusterSpec(masters=2, replicas=0, node_timeout_ms=1000)
    with Cluster.start(one_impl, spec, backend="docker") as c:
        a, b = c.nodes
        c.faults.drop(a, b)  # b stops receiving from a; a still receives from b
        try:
            (rule,) = harness_rules(b)
            assert f"-s {a.host}/32" in rule and rule.endswith("-j DROP"), rule
            assert harness_rules(a) == []
            # the rule matches real traffic: a's cluster-bus packets to b are dropped
            wait_for(
                lambda: (dropped_packets(b, a) > 0, dropped_packets(b, a)),
                10,
                f"packets from {a.name} dropped at {b.name}",
            )
        finally:
            c.faults.heal()
        for n in c.nodes:
            assert harness_rules(n) == [], f"{n.name}: {input_rules(n)}"
        c.wait_ready(REJOIN_TIMEOUT)


def test_master_cut_off_by_drops_is_failed_while_the_host_reaches_it(
    one_impl: Implementation,
) -> None:
    spec = ClusterSpec(masters=3, replicas=1, node_timeout_ms=1000)
    with Cluster.start(one_impl, spec, backend="docker") as c:
        master, replica, others, slots = failover_roles(c, c.initial_masters[1])
        bound = spec.failover_bound_ms() / 1000

        with c.faults.dropping(master, others) as ev, c.faults.dropping(others, master):
            assert len(harness_rules(master)) == len(others)
            for n in others:
                assert len(harness_rules(n)) == 1, f"{n.name}: {input_rules(n)}"
            wait_flagged_fail(c, master, others, left_of(ev, bound))
            assert master.call("PING") == "PONG"  # the host's own traffic is not dropped
            wait_promoted(c, replica, slots, master, left_of(ev, bound))

        for n in c.nodes:
            assert harness_rules(n) == [], f"{n.name}: {input_rules(n)}"
        wait_rejoined_as_replica(c, master, replica)


# -- 4. network faults elsewhere ------------------------------------------------------------


def test_network_faults_raise_not_supported_on_local(one_impl: Implementation) -> None:
    with Cluster.start(one_impl, ClusterSpec(masters=2, replicas=0), backend="local") as c:
        a, b = c.nodes

        def in_isolated_block() -> None:
            with c.faults.isolated(a):
                pytest.fail("the block ran on a backend that cannot isolate")

        attempts: list[tuple[str, Callable[[], object]]] = [
            ("isolate", lambda: c.faults.isolate(a)),
            ("rejoin", lambda: c.faults.rejoin(a)),
            ("isolated", in_isolated_block),
            ("drop", lambda: c.faults.drop(a, b)),
            ("drop", lambda: c.faults.drop([a, b], [a, b])),
        ]
        for what, attempt in attempts:
            with pytest.raises(NotSupportedError) as info:
                attempt()
            msg = str(info.value)
            assert "\n" not in msg and "local cluster has no namespace" in msg, f"{what}: {msg!r}"
        c.faults.heal()  # nothing was cut: nothing to undo, no error
        assert a.call("PING") == "PONG"
        c.wait_ready(10)


# -- subprocess sandbox (see sandbox.py) ----------------------------------------------------


@dataclass
class Sandbox(BaseSandbox):
    """A :class:`sandbox.Sandbox` whose processes are found by the marker alone, which also
    keeps the owner label of every process it starts."""

    owners: dict[int, str] = field(default_factory=dict)  # pid: LABEL_OWNER=<pid>:<start>

    gone_timeout = GONE_TIMEOUT
    poll_s = POLL_S

    def owns(self, pid: int) -> bool:
        """Carries the marker: harness processes and their watchdogs (servers run in
        containers)."""
        try:
            return pid != os.getpid() and self.has_marker(pid)
        except OSError:
            return False

    def popen(
        self, argv: list[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        proc = super().popen(argv, env, **kwargs)
        # the start time is set at fork and readable until the process is reaped
        self.owners[proc.pid] = owner_label(proc.pid, proc_start_time(proc.pid))
        return proc


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox.create(tmp_path)
    yield box
    box.kill_leftovers()  # never let one test's leak outlive it
    with contextlib.closing(images.docker_client()) as client:  # nor a failed test's
        for label in box.owners.values():
            remove_resources(client, {LABEL_OWNER: label.partition("=")[2]})


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    owner: str

    def describe(self) -> str:
        return outcome(self)


def run_to_end(box: Sandbox, argv: list[str], env: dict[str, str] | None = None) -> Finished:
    """Run ``python ARGV`` to its end (bounded); stdout and stderr apart."""
    proc = box.popen(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = communicate(proc, argv, RUN_TIMEOUT)
    return Finished(proc.returncode, out, err, box.owners[proc.pid])


# -- 4b. the requires("network_faults") marker ----------------------------------------------

NEEDS_NETWORK_FAULTS = """
import pytest


@pytest.mark.requires("network_faults")
@pytest.mark.cluster(masters=2, replicas=0)
def test_cuts_a_link(cluster):
    a, b = cluster.nodes
    cluster.faults.drop(a, b)
    assert cluster.faults.blocked == {b: {a}}
    cluster.faults.heal()
    assert not cluster.faults.blocked
"""


@pytest.mark.parametrize(
    ("backend", "impl"), [("local", "redis-7.0"), ("local", "redis-6.2"), ("docker", "redis-7.0")]
)
def test_requires_network_faults_marker(sandbox: Sandbox, backend: str, impl: str) -> None:
    if impls.available(impl) is None:
        pytest.skip(f"{impl} is not installed")
    (sandbox.dir / "test_generated.py").write_text(NEEDS_NETWORK_FAULTS)
    res = run_to_end(
        sandbox,
        [
            *PYTEST,
            "-rs",
            "--backend",
            backend,
            "--impl",
            impl,
            "test_generated.py",
        ],
    )
    out = res.describe()
    assert res.returncode == 0, out
    # Local clusters get a namespace when the test needs network faults; that needs
    # root, and a server with bind-source-addr (not Redis 6.2).
    expect_skip = None
    if backend == "local" and impl == "redis-6.2":
        expect_skip = "redis-6.2 lacks bind_source_addr"
    elif backend == "local" and os.geteuid() != 0:
        expect_skip = "needs root"
    if expect_skip:
        assert "1 skipped" in res.stdout, out
        skip_lines = [ln for ln in res.stdout.splitlines() if ln.startswith("SKIPPED")]
        assert len(skip_lines) == 1 and expect_skip in skip_lines[0], out
    else:
        assert "1 passed" in res.stdout, out
    assert not labelled(res.owner), labelled(res.owner)
    sandbox.assert_nothing_left()


# -- 5. leak-proofing -----------------------------------------------------------------------

HOLDING_TEST = """
import json
import os
import threading
from pathlib import Path

import pytest


@pytest.mark.cluster(masters=1, replicas=0)
def test_hold(cluster):
    assert cluster.nodes[0].call("PING") == "PONG"
    info = {
        "run": cluster.backend.run.id,
        "containers": [n.container.name for n in cluster.nodes],
        "network": cluster.backend.network_name,
    }
    ready = Path(os.environ["READY_FILE"])
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.rename(ready)  # atomic: the outer test never reads a half-written file
    if os.environ.get("THEN") == "fail":
        assert 1 + 1 == 3, "deliberate failure"
    threading.Event().wait(300)  # hold the cluster until killed or interrupted
"""


@dataclass
class Holder:
    spawned: Spawned
    owner: str  # LABEL_OWNER=<pid>:<start time> of the pytest
    run_id: str
    containers: list[str]
    network: str

    @property
    def proc(self) -> subprocess.Popen[str]:
        return self.spawned.proc

    @property
    def labels(self) -> tuple[str, str]:
        return f"{LABEL_RUN}={self.run_id}", self.owner

    def resources(self) -> list[str]:
        return labelled(*self.labels)

    def assert_removed(self, timeout: float = GONE_TIMEOUT) -> None:
        poll_until(
            lambda: not self.resources(),
            timeout,
            lambda: f"after {timeout:.0f}s still there: {self.resources()}; {self.describe()}",
            interval=POLL_S,
        )

    def describe(self) -> str:
        return self.spawned.describe()


def start_holder(box: Sandbox, then: str = "hold") -> Holder:
    """A pytest (``--backend docker``) whose test holds a 1-node cluster; returns once the
    cluster is ready (``then="fail"``: the test then fails and pytest ends)."""
    env = {**box.env, "THEN": then}
    spawned, ready = box.hold(HOLDING_TEST, "--backend", "docker", env=env, timeout=START_TIMEOUT)
    info = json.loads(ready)
    owner = box.owners[spawned.proc.pid]
    holder = Holder(spawned, owner, info["run"], info["containers"], info["network"])
    # positive control: the labels the leak checks look for are on what the run created
    for label in holder.labels:
        assert sorted(docker_names("container", label)) == sorted(holder.containers), (
            label,
            holder.describe(),
        )
        assert docker_names("network", label) == [holder.network], (label, holder.describe())
    assert len(box.run_dirs()) == 1, box.leftovers()
    return holder


def test_failing_test_with_a_cluster_leaves_nothing(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox, then="fail")
    holder.spawned.wait_ended(RUN_TIMEOUT, "pytest did not end")
    out = holder.describe()
    text = holder.spawned.output.read_text()
    assert holder.proc.returncode == 1, out
    assert "1 failed" in text and "deliberate failure" in text, out
    # the node's log, taken from the container, is attached to the report
    assert re.search(r"node n0 \d+\.\d+\.\d+\.\d+:6379 log \(tail\)", text), out
    assert "Ready to accept connections" in text, out
    copied = list((sandbox.dir / "reports" / "logs").rglob("*.log"))
    assert len(copied) == 1, out
    assert "Ready to accept connections" in copied[0].read_text(), out
    assert not holder.resources(), holder.resources()
    sandbox.assert_nothing_left()


def test_ctrl_c_leaves_nothing(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox)
    holder.proc.send_signal(signal.SIGINT)
    holder.spawned.assert_interrupted(timeout=60)
    assert not holder.resources(), holder.resources()
    sandbox.assert_nothing_left()


def test_sigkilled_pytest_watchdog_removes_containers(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox)
    assert len(sandbox.watchdogs()) == 1, sandbox.leftovers()
    holder.proc.kill()
    holder.proc.wait()
    holder.assert_removed(GONE_TIMEOUT)
    sandbox.assert_nothing_left()


@pytest.mark.parametrize("sweeper_state", ["same-state-dir", "other-state-dir"])
def test_sweep_removes_containers_whose_watchdog_died(sandbox: Sandbox, sweeper_state: str) -> None:
    holder = start_holder(sandbox)
    (watchdog,) = sandbox.watchdogs()
    os.kill(watchdog, signal.SIGKILL)
    poll_until(
        lambda: not sandbox.watchdogs(),
        GONE_TIMEOUT,
        lambda: "watchdog survived SIGKILL",
        interval=POLL_S,
    )
    holder.proc.kill()
    holder.proc.wait()
    # Nobody is left to clean up. (Any harness process on this daemon that creates a
    # DockerBackend now would sweep them: this check races with other runs, barely.)
    assert set(holder.resources()) == {
        *(f"container {n}" for n in holder.containers),
        f"network {holder.network}",
    }, holder.resources()
    (old_run,) = sandbox.run_dirs()

    env = sandbox.env
    if sweeper_state == "other-state-dir":  # the docker sweep goes by labels alone
        env["HARNESS_STATE_DIR"] = str(sandbox.dir / "other-state")
    res = run_to_end(
        sandbox,
        ["-c", "from harness.backends.docker import DockerBackend; DockerBackend()"],
        env,
    )
    assert res.returncode == 0, res.describe()
    holder.assert_removed(timeout=5)  # the sweep is done when the constructor returns
    if sweeper_state == "other-state-dir":
        assert old_run.exists()  # that state dir was not looked at; tidy it the usual way
        tidy = run_to_end(sandbox, ["-c", "from harness.runs import Run; Run().close()"])
        assert tidy.returncode == 0, tidy.describe()
    assert not old_run.exists(), f"old run dir {old_run} not swept"
    sandbox.assert_nothing_left()


# -- 6. bad input ---------------------------------------------------------------------------


def harness_run(box: Sandbox, *args: str, env: dict[str, str] | None = None) -> Finished:
    res = run_to_end(box, ["-m", "harness", "run", *args], env)
    assert not labelled(res.owner), labelled(res.owner)
    return res


def test_run_without_docker_is_one_line(sandbox: Sandbox) -> None:
    env = {**sandbox.env, "DOCKER_HOST": "unix:///nonexistent.sock"}
    res = harness_run(sandbox, "--backend", "docker", "--suite", "conformance", env=env)
    sandbox.assert_nothing_left()
    assert_one_line_cli_error(res, "Docker is not reachable", "/nonexistent.sock")


def test_pytest_without_docker_is_one_usage_error(sandbox: Sandbox) -> None:
    (sandbox.dir / "test_generated.py").write_text("def test_uses(cluster):\n    pass\n")
    env = {**sandbox.env, "DOCKER_HOST": "unix:///nonexistent.sock"}
    res = run_to_end(sandbox, [*PYTEST, "--backend", "docker", "test_generated.py"], env)
    sandbox.assert_nothing_left()
    assert_pytest_usage_error(res, "Docker is not reachable")


def test_run_with_an_image_not_here(sandbox: Sandbox) -> None:
    res = harness_run(sandbox, "--backend", "docker", "--image", "nosuch:latest")
    assert_one_line_cli_error(res, "nosuch:latest", "not found locally")
    sandbox.assert_nothing_left()


def test_run_image_on_the_local_backend(sandbox: Sandbox) -> None:
    res = harness_run(sandbox, "--image", "x", "--backend", "local")
    assert_one_line_cli_error(res, "--image x", "needs --backend docker")
    sandbox.assert_nothing_left()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_run_wrapper_script_on_docker(sandbox: Sandbox) -> None:
    script = sandbox.dir / "wrapped-server.sh"
    script.write_text(f'#!/bin/sh\nexec {shutil.which("redis-server")} "$@"\n')
    script.chmod(0o755)
    res = harness_run(
        sandbox, "--backend", "docker", "--impl-binary", str(script), "--suite", "conformance"
    )
    sandbox.assert_nothing_left()
    assert_one_line_cli_error(res, "wrapped-server.sh", "cannot be packaged")


# -- 7. image build ---------------------------------------------------------------------------


@pytest.mark.skipif(
    not Path("/usr/bin/redis-server").exists(), reason="needs /usr/bin/redis-server"
)
def test_image_build_from_binary(sandbox: Sandbox) -> None:
    refs = []
    for _ in range(2):
        res = run_to_end(
            sandbox, ["-m", "harness", "image", "build", "--from-binary", "/usr/bin/redis-server"]
        )
        assert res.returncode == 0, res.describe()
        out = lines(res.stdout)
        assert len(out) == 1 and res.stderr.strip() == "", res.describe()
        refs.append(out[0])
    assert refs[0] == refs[1], refs
    pkg = images.inspect_binary("/usr/bin/redis-server")
    assert refs[0] == pkg.default_tag
    with contextlib.closing(images.docker_client()) as client:
        labels = client.images.get(refs[0]).labels
    assert labels[images.SHA_LABEL] == pkg.sha256
    assert labels[images.EXECUTABLE_LABEL] == "redis-server"
    assert images.image_for_binary("/usr/bin/redis-server") == refs[0]  # what runs reuse
    sandbox.assert_nothing_left()
