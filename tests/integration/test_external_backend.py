"""``--backend external``: the harness checks a cluster it did not start.

The cluster here is made the way an operator would: six ``redis-server`` processes
started by this module and joined with ``redis-cli --cluster create``. The harness then
runs as a subprocess, like an SRE runs it before an upgrade; the tests check its exit
status, ``summary.json``, that it left no key behind and did not change the cluster, that
a broken cluster fails naming the slot, and that bad input is one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from outside import settled
from sandbox import PYTEST, Sandbox, assert_one_line_cli_error, assert_pytest_usage_error, outcome

from harness import guard
from harness.backends.base import control_client
from harness.ports import PortLease
from harness.topology import parse_cluster_nodes
from harness.wait import wait_for

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
pytestmark = [
    pytest.mark.skipif(
        REDIS is None or REDIS_CLI is None, reason="redis-server / redis-cli not on PATH"
    ),
    # one worker under xdist: the module's outside clusters serve all its tests, instead
    # of being formed again in every worker that gets one of them
    pytest.mark.xdist_group("external_backend"),
]
TIMEOUT = 300  # a whole suite against the cluster


@dataclass
class Outside:
    """A cluster started outside the harness: its ports and a client per node."""

    ports: list[int]

    @property
    def nodes(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def call(self, port: int, *args: Any) -> Any:
        with control_client("127.0.0.1", port, timeout=5) as c:  # raw replies
            return c.execute_command(*args)

    def masters(self) -> list[int]:
        entries = parse_cluster_nodes(self.call(self.ports[0], "CLUSTER", "NODES"))
        return sorted(e.port for e in entries if e.is_master and e.slots)

    def slot_map(self) -> list[tuple[str, tuple[tuple[int, int], ...], int]]:
        """(id, slots, config epoch) per node: what a harness run must not change."""
        entries = parse_cluster_nodes(self.call(self.ports[0], "CLUSTER", "NODES"))
        return sorted((e.node_id, e.slots, e.config_epoch) for e in entries)

    def flush(self) -> None:
        """What the operator does after allowing destructive tests (never the harness)."""
        for port in self.masters():
            self.call(port, "FLUSHALL")

    def keys(self, port: int, pattern: str) -> list[str]:
        with redis.Redis(port=port, decode_responses=True, socket_timeout=5) as c:
            return list(c.scan_iter(match=pattern, count=1000))

    def ready(self) -> tuple[bool, str]:
        return settled(self.call, self.ports)


def _start_server(directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    assert REDIS is not None
    directory.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LEAKTEST"}
    with (directory / "server.log").open("wb") as log:
        return subprocess.Popen(
            [
                REDIS,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync-delay",
                "0",
                *extra,
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(10)


def _answering(port: int) -> tuple[bool, str]:
    try:
        with redis.Redis(port=port, socket_timeout=1) as c:
            return bool(c.ping()), "PONG"
    except redis.exceptions.ConnectionError as exc:
        return False, str(exc)


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outside]:
    """3 masters x 1 replica, formed by redis-cli, torn down after the module."""
    base = tmp_path_factory.mktemp("outside")
    lease = PortLease()
    ports = lease.claim(6)
    procs: list[subprocess.Popen[bytes]] = []
    # the operator's own control_client calls: the harness's guard must let them through
    guard.allow(lease, [("127.0.0.1", p) for p in ports])
    try:
        for p in ports:
            procs.append(
                _start_server(
                    base / str(p), p, "--cluster-enabled", "yes", "--cluster-node-timeout", "5000"
                )
            )
        for p in ports:
            wait_for(lambda p=p: _answering(p), 15, f"redis-server on {p}")
        assert REDIS_CLI is not None
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster = Outside(ports)
        wait_for(cluster.ready, 30, "the outside cluster ready")
        yield cluster
    finally:
        _stop(procs)
        lease.release()
        guard.revoke(lease)


def harness(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return box.run(["-m", "harness", *args], timeout=TIMEOUT)


def summary(box: Sandbox) -> dict[str, dict[str, Any]]:
    data = json.loads((box.dir / "reports" / "summary.json").read_text())
    return {t["nodeid"]: t for t in data["tests"]}


def check_external(box: Sandbox, outside: Outside, *args: str) -> subprocess.CompletedProcess[str]:
    reports = str(box.dir / "reports")
    return harness(
        box,
        "run",
        "--backend",
        "external",
        "--nodes",
        outside.nodes,
        "--report-dir",
        reports,
        *args,
    )


def test_conformance_runs_on_the_outside_cluster_and_leaves_it_as_it_was(
    sandbox: Sandbox, outside: Outside
) -> None:
    before = outside.slot_map()
    res = check_external(sandbox, outside, "--suite", "conformance")
    assert res.returncode == 0, outcome(res)
    tests = summary(sandbox)
    passed = {n.split("::")[-1] for n, t in tests.items() if t["outcome"] == "passed"}
    assert {
        "test_bringup_topology_is_healthy",
        "test_every_replica_follows_its_master_and_is_synced",
        "test_keyslot_matches_crc16",
        "test_keyslot_follows_the_specification_examples",
        "test_wrong_master_answers_moved_to_the_owner",
        "test_replica_redirects_writes_and_reads_to_its_master",
        "test_fault_free_writes_are_all_read_back",
    } <= passed, outcome(res)
    bump = next(t for n, t in tests.items() if n.endswith("test_epochs_stay_unique_after_bump"))
    assert bump["outcome"] == "skipped"
    assert "external cluster: destructive" in bump["message"]
    assert "pass --allow-destructive to run it" in bump["message"]
    counts = next(
        t for n, t in tests.items() if n.endswith("test_cluster_client_reaches_every_master")
    )
    assert counts["outcome"] == "skipped"
    assert "external cluster: the test counts every key of each master" in counts["message"]
    for port in outside.masters():  # the workload's keys are gone, nothing else was written
        assert outside.keys(port, "*") == [], f"keys left on {port}"
    assert outside.slot_map() == before


def test_all_suites_skip_chaos_with_the_reason(sandbox: Sandbox, outside: Outside) -> None:
    res = check_external(sandbox, outside, "--suite", "all")
    assert res.returncode == 0, outcome(res)
    chaos = {n: t for n, t in summary(sandbox).items() if "suites/chaos/" in n}
    assert chaos, "no chaos test was collected"
    for nodeid, t in chaos.items():
        assert t["outcome"] == "skipped", (nodeid, t)
        assert "external cluster: destructive" in t["message"], (nodeid, t)
        assert "--allow-destructive" in t["message"], (nodeid, t)


def test_allowed_destructive_test_skips_a_fault_it_cannot_apply(
    sandbox: Sandbox, outside: Outside
) -> None:
    before = outside.slot_map()
    try:
        res = check_external(
            sandbox, outside, "--suite", "chaos", "--allow-destructive",
            "--", "-k", "test_kill_master_promotes_its_replica",
        )  # fmt: skip
    finally:
        outside.flush()  # the test writes keys of fixed names before it tries the kill
    assert res.returncode == 0, outcome(res)
    (test,) = summary(sandbox).values()
    assert test["outcome"] == "skipped", test
    assert "cannot kill" in test["message"], test
    assert outside.slot_map() == before


def test_a_cluster_with_an_unassigned_slot_fails_naming_it(
    sandbox: Sandbox, outside: Outside
) -> None:
    owner = outside.masters()[0]  # redis-cli gives the first master 0-5460
    outside.call(owner, "CLUSTER", "DELSLOTS", 5460)
    try:
        res = check_external(sandbox, outside, "--suite", "conformance", "--", "-k", "topology")
    finally:
        outside.call(owner, "CLUSTER", "ADDSLOTS", 5460)
        wait_for(outside.ready, 30, "the outside cluster ready again")
    assert res.returncode == 1, outcome(res)
    health = next(t for n, t in summary(sandbox).items() if n.endswith("healthy"))
    assert health["outcome"] == "failed", health
    assert "1 slots unassigned: 5460" in res.stdout, outcome(res)


FAILS_MID_WORKLOAD = """
def test_fails_mid_workload(cluster, workload):
    wl = workload(cluster, kind="set", clients=2, rate=400, max_ops=2000)
    with wl.running():
        wl.wait_ops(200)
        keys = [k for k in wl.keys if cluster.client().exists(k)]
        assert keys and all(k.startswith("harness:") for k in keys), keys
        raise AssertionError("deliberate failure with the workload's keys in place")
"""


def test_workload_keys_are_removed_when_a_test_fails(sandbox: Sandbox, outside: Outside) -> None:
    (sandbox.dir / "test_generated.py").write_text(FAILS_MID_WORKLOAD)
    args = ["test_generated.py", "--backend", "external", "--nodes", outside.nodes]
    res = sandbox.run([*PYTEST, *args], timeout=120)
    assert res.returncode == 1, outcome(res)
    assert "deliberate failure with the workload's keys in place" in res.stdout, outcome(res)
    for port in outside.masters():
        assert outside.keys(port, "*") == [], f"keys left on {port}"


def test_every_node_must_be_named(sandbox: Sandbox, outside: Outside) -> None:
    five = ",".join(f"127.0.0.1:{p}" for p in outside.ports[:5])
    res = harness(sandbox, "run", "--backend", "external", "--nodes", five)
    assert_one_line_cli_error(res, f"127.0.0.1:{outside.ports[5]}", "not in --nodes")


def test_nodes_must_be_named_as_they_announce_themselves(
    sandbox: Sandbox, outside: Outside
) -> None:
    named = [f"localhost:{outside.ports[0]}", *(f"127.0.0.1:{p}" for p in outside.ports[1:])]
    res = harness(sandbox, "run", "--backend", "external", "--nodes", ",".join(named))
    assert_one_line_cli_error(
        res, f"localhost:{outside.ports[0]} announces itself as 127.0.0.1:{outside.ports[0]}"
    )


def test_a_node_not_in_cluster_mode_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    lease = PortLease()
    (port,) = lease.claim(1)
    proc = _start_server(tmp_path / "standalone", port)
    try:
        wait_for(lambda: _answering(port), 15, "standalone redis-server")
        res = harness(sandbox, "run", "--backend", "external", "--nodes", f"127.0.0.1:{port}")
    finally:
        _stop([proc])
        lease.release()
    assert_one_line_cli_error(res, f"127.0.0.1:{port} is not in cluster mode")


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--backend", "external"], "--backend external needs --nodes"),
        (["--backend", "external", "--nodes", "127.0.0.1"], "'127.0.0.1' is not HOST:PORT"),
        (["--backend", "external", "--nodes", "a:1,b:x"], "'b:x' is not HOST:PORT"),
        (["--backend", "external", "--nodes", "h:70000"], "port 1..65535"),
        (["--nodes", "127.0.0.1:7000"], "--nodes is for --backend external"),
        (["--backend", "docker", "--nodes", "127.0.0.1:7000"], "--nodes is for --backend external"),
    ],
    ids=["no-nodes", "no-port", "bad-port", "port-range", "local", "docker"],
)
def test_bad_external_options_are_one_line(sandbox: Sandbox, args: list[str], expect: str) -> None:
    assert_one_line_cli_error(harness(sandbox, "run", *args), expect)


def test_the_plugin_refuses_external_without_nodes(sandbox: Sandbox) -> None:
    (sandbox.dir / "test_generated.py").write_text("def test_nothing(cluster):\n    pass\n")
    res = sandbox.run([*PYTEST, "test_generated.py", "--backend", "external"], timeout=60)
    assert_pytest_usage_error(res, "--backend external needs --nodes")


def test_an_unreachable_node_is_one_line(sandbox: Sandbox) -> None:
    lease = PortLease()
    (port,) = lease.claim(1)  # claimed and unused: nothing listens there
    try:
        res = harness(sandbox, "run", "--backend", "external", "--nodes", f"127.0.0.1:{port}")
    finally:
        lease.release()
    assert_one_line_cli_error(res, f"127.0.0.1:{port} is unreachable")


def test_allowed_destructive_conformance_passes_too(sandbox: Sandbox, outside: Outside) -> None:
    """Last in the module: it fails over masters and bumps an epoch."""
    try:
        res = check_external(sandbox, outside, "--suite", "conformance", "--allow-destructive")
        assert res.returncode == 0, outcome(res)
        tests = summary(sandbox)
        for name in (
            "test_readonly_replica_serves_reads_of_its_slots",
            "test_multi_key_commands_need_one_slot",
        ):
            (t,) = (t for n, t in tests.items() if n.endswith(name))
            assert t["outcome"] == "passed", t
    finally:
        outside.flush()
