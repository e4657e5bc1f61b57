"""Proxied clusters: every address the cluster hands out is a proxy, and no proxy
outlives its cluster, on the embedded server or on an external one (TOXIPROXY_URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import Cluster, ClusterSpec
from harness.impl import Implementation, available
from harness.ports import PortLease
from harness.toxiproxy import ToxiproxyServer
from harness.toxiproxy.client import Toxiproxy, connect


@pytest.fixture
def impl() -> Implementation:
    found = available("redis-7.0") or available("valkey-8.0")
    if found is None:
        pytest.skip("needs a server with runtime_announce (redis-7.0 or valkey-8.0)")
    return found


def test_moved_points_at_proxies_and_proxies_go_with_the_cluster(impl: Implementation) -> None:
    with Cluster.start(impl, ClusterSpec(masters=2, replicas=0, proxied=True)) as c:
        names = {p.name for pair in c.faults.proxies.values() for p in pair}
        assert len(names) == 4  # a client and a bus proxy per node
        assert names <= set(connect().proxies())
        a, b = c.nodes
        view = c.view(a)
        assert {e.addr for e in view.nodes} == {a.public_addr, b.public_addr}
        assert a.public_addr != a.addr
    assert not names & set(connect().proxies()), "proxies outlived their cluster"


HOLD_AND_FAIL = """
import pytest

@pytest.mark.cluster(masters=1, replicas=0, proxied=True)
def test_fails(cluster):
    assert cluster.faults.proxies_of(cluster.nodes[0])
    assert False, "deliberate"
"""


def test_external_toxiproxy_is_left_clean_after_a_failing_run(
    impl: Implementation, tmp_path: Path
) -> None:
    lease = PortLease()
    port = lease.claim(1)[0]
    with ToxiproxyServer(port=port) as server:
        external = Toxiproxy(server.url)
        (tmp_path / "test_hold.py").write_text(HOLD_AND_FAIL)
        env = {**os.environ, "TOXIPROXY_URL": server.url, "HARNESS_STATE_DIR": str(tmp_path / "s")}
        res = subprocess.run(
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
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 1 and "1 failed" in res.stdout, res.stdout[-2000:]
        assert external.proxies() == {}, (
            f"proxies left on the external server: {external.proxies()}"
        )
    lease.release()
