"""Namespaced local clusters: partitions cut node-to-node links, never the harness's own
path, and no namespace, veth or rule outlives a run, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness import Cluster, ClusterSpec
from harness.impl import Implementation, available
from harness.netns import host_interface, unavailable_reason
from harness.wait import wait_for

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=f"{unavailable_reason()}")


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith("rch")}


def _veths() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ": rh" in line}


@pytest.fixture
def impl() -> Implementation:
    found = available("redis-7.0") or available("valkey-8.0")
    if found is None:
        pytest.skip("needs redis-7.0 or valkey-8.0 (bind-source-addr)")
    return found


def test_namespace_lifecycle_and_pair_rules(impl: Implementation) -> None:
    with Cluster.start(impl, ClusterSpec(masters=2, replicas=0, network_faults=True)) as c:
        ns = c.backend.ns  # type: ignore[attr-defined]
        assert ns.name in _namespaces()
        a, b = c.nodes
        assert a.host != b.host and a.host.startswith("10.214.")
        c.faults.drop(a, b)
        assert len(ns.rules()) == 1 and f"-s {a.host}/32 -d {b.host}/32" in ns.rules()[0]
        assert a.call("PING") == "PONG" and b.call("PING") == "PONG"  # the harness path stays
        c.faults.heal()
        assert ns.rules() == []
    # this cluster's namespace and veth only: other tests (parallel workers) and other runs
    # on the machine make and delete theirs meanwhile
    assert ns.name not in _namespaces()
    assert host_interface(ns.name) not in _veths()


def test_redis_62_cannot_be_namespaced() -> None:
    old = available("redis-6.2")
    if old is None:
        pytest.skip("redis-6.2 is not installed")
    from harness.errors import NotSupportedError

    with pytest.raises(NotSupportedError, match="bind_source_addr"):
        Cluster.start(old, ClusterSpec(masters=1, replicas=0, network_faults=True))


HOLD = """
import pathlib, threading, pytest

@pytest.mark.requires("network_faults")
@pytest.mark.cluster(masters=1, replicas=0)
def test_hold(cluster):
    pathlib.Path("ready.tmp").write_text(cluster.backend.ns.name)
    pathlib.Path("ready.tmp").rename("ready")  # atomic: never read half-written
    threading.Event().wait(300)
"""


def test_sigkilled_run_leaves_no_namespace(tmp_path: Path, impl: Implementation) -> None:
    (tmp_path / "test_hold.py").write_text(HOLD)
    env = {**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--impl",
            impl.name,
            "test_hold.py",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        ready = tmp_path / "ready"
        wait_for(lambda: (ready.exists() and proc.poll() is None, proc.poll()), 60, "cluster held")
        name = ready.read_text()
        assert name in _namespaces()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(
            lambda: (name not in _namespaces(), sorted(_namespaces())),
            15,
            f"namespace {name} removed",
        )
        wait_for(
            lambda: (host_interface(name) not in _veths(), sorted(_veths())),
            15,
            f"veth {host_interface(name)} removed",
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
