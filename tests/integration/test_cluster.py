"""The library on real servers: bring-up, readiness, process faults, wrappers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from harness import Cluster, ClusterSpec, checkers, key_for_slot
from harness.backends.local import LocalNode
from harness.errors import HarnessError
from harness.impl import Implementation, from_binary
from harness.wait import wait_for


def test_bringup_is_ready_on_every_implementation(any_impl: Implementation) -> None:
    with Cluster.start(any_impl, ClusterSpec(masters=3, replicas=1, node_timeout_ms=1000)) as c:
        snap = c.snapshot()
        verdict = checkers.healthy(snap)
        assert verdict.ok, f"{verdict}\n{snap.describe()}"
        for r in c.initial_replicas:
            info = c.replication_info(r)
            assert info["master_link_status"] == "up"
            assert info["master_sync_in_progress"] == "0"
        # node timeout and persistence reached the servers
        assert c.nodes[0].config_get("cluster-node-timeout") == "1000"
        assert c.nodes[0].config_get("appendonly") == "no"


def test_settings_reach_the_servers(any_impl: Implementation) -> None:
    spec = ClusterSpec(
        masters=1, replicas=0, persistence="aof", server_args=(("maxmemory", "64mb"),)
    )
    with Cluster.start(any_impl, spec) as c:
        n = c.nodes[0]
        assert n.config_get("appendonly") == "yes"
        assert n.config_get("appendfsync") == "always"
        assert n.config_get("maxmemory") == str(64 * 1024 * 1024)


def test_odd_shapes(any_impl: Implementation) -> None:
    with Cluster.start(any_impl, ClusterSpec(masters=5, replicas=0)) as c:
        view = c.view(c.nodes[0], with_shards=False)
        assert sorted(e.slot_count for e in view.nodes) == [3276, 3277, 3277, 3277, 3277]
        assert checkers.healthy(c.snapshot()).ok


def test_process_faults_change_node_state(any_impl: Implementation) -> None:
    with Cluster.start(any_impl, ClusterSpec(masters=1, replicas=1)) as c:
        master, replica = c.nodes
        with c.faults.paused(replica):
            assert replica.state == "paused"
            with pytest.raises(redis.exceptions.TimeoutError):
                replica.call("PING", timeout=0.2)
        assert replica.call("PING") == "PONG"
        c.faults.kill(replica)
        assert replica.state == "stopped"
        with pytest.raises(redis.exceptions.ConnectionError):
            replica.call("PING")
        c.faults.start(replica)
        c.wait_ready(20)
        c.faults.restart(master)
        assert master.call("PING") == "PONG"
        actions = [e.action for e in c.events]
        assert actions == ["ready", "pause", "resume", "kill", "start", "stop", "start"]
        times = [e.t_ns for e in c.events]
        assert times == sorted(times)


def test_starting_a_running_node_is_refused(any_impl: Implementation) -> None:
    with (
        Cluster.start(any_impl, ClusterSpec(masters=1, replicas=0)) as c,
        pytest.raises(HarnessError, match="is running"),
    ):
        c.faults.start(c.nodes[0])


def test_crash_restart_without_persistence_loses_data(any_impl: Implementation) -> None:
    """The harness must be able to show the dangerous configuration for what it is."""
    with Cluster.start(any_impl, ClusterSpec(masters=1, replicas=0)) as c:
        n = c.nodes[0]
        key = key_for_slot(42)
        n.call("SET", key, "v")
        c.faults.crash_restart(n)
        c.wait_ready(20)
        assert n.call("GET", key) is None


def _wrapper(tmp_path: Path, target: str, exec_it: bool) -> str:
    script = tmp_path / ("exec-wrapper" if exec_it else "fork-wrapper")
    run = f'exec "{target}" "$@"' if exec_it else f'"{target}" "$@"\nexit $?'
    script.write_text(f"#!/bin/sh\n{run}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize("exec_it", [True, False], ids=["exec", "no-exec"])
def test_wrapper_scripts_are_detected_and_killed_as_a_group(
    any_impl: Implementation, tmp_path: Path, exec_it: bool
) -> None:
    wrapped = from_binary(_wrapper(tmp_path, any_impl.binary, exec_it))
    assert wrapped.name == any_impl.name and wrapped.version == any_impl.version
    with Cluster.start(wrapped, ClusterSpec(masters=1, replicas=0)) as c:
        node = c.nodes[0]
        assert isinstance(node, LocalNode) and node.pid is not None
        server_pid = int(node.call("INFO", "server").split("process_id:")[1].split()[0])  # type: ignore[union-attr]
        assert (server_pid == node.pid) is exec_it
        c.faults.kill(node)
        wait_for(lambda: (not _alive(server_pid), server_pid), 5, f"server pid {server_pid} gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_killed_paused_node_dies(any_impl: Implementation) -> None:
    with Cluster.start(any_impl, ClusterSpec(masters=1, replicas=0)) as c:
        node = c.nodes[0]
        assert isinstance(node, LocalNode) and node.pid is not None
        pid = node.pid
        c.faults.pause(node)
        c.close()
        assert not _alive(pid)


def test_a_port_reused_in_the_same_run_starts_fresh(any_impl: Implementation) -> None:
    """Regression: the second cluster on the same ports must not load the first's nodes.conf."""
    spec = ClusterSpec(masters=1, replicas=1)
    with Cluster.start(any_impl, spec) as first:
        ports = [n.port for n in first.nodes]
        first_ids = {n.node_id for n in first.nodes}
    with Cluster.start(any_impl, spec, ports=ports) as second:
        assert [n.port for n in second.nodes] == ports
        assert not first_ids & {n.node_id for n in second.nodes}
        assert checkers.healthy(second.snapshot()).ok


def test_readiness_waits_for_replication_to_stream(any_impl: Implementation) -> None:
    """A replica that reports its sync finished does not make the cluster ready until it
    acknowledges a fresh write: a frozen replica (its link still up) holds readiness."""
    with Cluster.start(any_impl, ClusterSpec(masters=1, replicas=1)) as c:
        master, replica = c.nodes
        entries = c.view(master, with_shards=False).nodes
        assert c._unstreamed_replicas(entries, c.nodes) == []
        with c.faults.paused(replica):
            problems = c._unstreamed_replicas(entries, c.nodes)
        assert problems and "0 of 1 replicas acknowledged" in problems[0], problems
