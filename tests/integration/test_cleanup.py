"""Nothing of a run survives it: failed tests, signals, SIGKILL, and a dead watchdog.

Each test runs the harness in a subprocess in a :class:`~sandbox.Sandbox` (own
``HARNESS_STATE_DIR``, unique ``LEAKTEST`` marker in the environment), which finds whatever
the run left behind, even a process that no longer has the run's ``HARNESS_RUN_ID``
registered anywhere.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass

import pytest
from sandbox import GONE_TIMEOUT, PYTEST, Sandbox, Spawned, outcome, poll_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

START_TIMEOUT = 60.0  # bounded waits for a cluster to come up (normally ~2 s)


# -- an inner pytest that holds a cluster ---------------------------------------------------

HOLDING_TEST = """
import os
import threading
from pathlib import Path

import pytest


@pytest.mark.cluster(masters=1, replicas=0)
def test_hold(cluster):
    assert cluster.nodes[0].call("PING") == "PONG"
    ready = Path(os.environ["READY_FILE"])
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(" ".join(str(n.pid) for n in cluster.nodes))
    tmp.rename(ready)  # atomic: the outer test never reads a half-written file
    threading.Event().wait(300)  # hold the cluster until we are killed or interrupted
"""


@dataclass
class Holder(Spawned):
    server_pids: list[int]


def start_holder(box: Sandbox, *, new_session: bool = False) -> Holder:
    """Start a pytest whose test holds a 1-node cluster; return once the cluster is ready."""
    spawned, ready = box.hold(HOLDING_TEST, timeout=START_TIMEOUT, new_session=new_session)
    holder = Holder(spawned.proc, spawned.output, [int(p) for p in ready.split()])
    assert holder.proc.poll() is None, (
        f"pytest ended before the cluster was ready; {holder.describe()}"
    )
    assert holder.server_pids, holder.describe()
    for pid in holder.server_pids:
        assert box.owns(pid), f"server {pid} not found as a process of the sandbox"
    assert len(box.run_dirs()) == 1, box.leftovers()
    return holder


# -- tests ---------------------------------------------------------------------------------

FAILING_TEST = """
import pytest


@pytest.mark.cluster(masters=1, replicas=0)
def test_fails_with_a_cluster(cluster):
    assert cluster.nodes[0].call("PING") == "PONG"
    assert 1 + 1 == 3, "deliberate failure"
"""


def test_failing_test_attaches_logs_and_leaves_nothing(sandbox: Sandbox) -> None:
    (sandbox.dir / "test_fails.py").write_text(FAILING_TEST)
    res = sandbox.run([*PYTEST, "test_fails.py"], timeout=120)
    out = outcome(res)
    assert res.returncode == 1, out
    assert "1 failed" in res.stdout, out
    assert "deliberate failure" in res.stdout, out
    assert "node n0 127.0.0.1:" in res.stdout and "log (tail)" in res.stdout, out
    assert "Ready to accept connections" in res.stdout, out  # the server's own log text
    assert "cluster 0 events" in res.stdout, out
    copied = list((sandbox.dir / "reports" / "logs").rglob("*.log"))
    assert len(copied) == 1 and "Ready to accept connections" in copied[0].read_text(), out
    sandbox.assert_nothing_left()


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_up_stops_on_signal(sandbox: Sandbox, sig: signal.Signals) -> None:
    proc = sandbox.popen(
        ["-m", "harness", "up", "--masters", "1", "--replicas", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[str] = []
    connected = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("connect:"):
                connected.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        poll_until(
            lambda: connected.is_set() or proc.poll() is not None,
            START_TIMEOUT,
            lambda: f"no 'connect:' line after {START_TIMEOUT:.0f}s: {''.join(lines)}",
        )
        assert connected.is_set(), f"up exited {proc.poll()}: {''.join(lines)}"
        assert len(sandbox.pids()) >= 3, sandbox.leftovers()  # up, watchdog, server
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)  # stdout is at EOF once the process and its children are gone
    assert proc.stderr is not None
    err = proc.stderr.read()
    out = f"exit {proc.returncode}\nstdout:\n{''.join(lines)}\nstderr:\n{err}"
    assert proc.returncode == 0, out
    assert "stopping..." in "".join(lines), out
    assert "Traceback" not in err, out
    sandbox.assert_nothing_left()


def test_sigkilled_pytest_watchdog_kills_servers(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox)
    assert sandbox.watchdogs(), sandbox.leftovers()
    holder.proc.kill()
    holder.proc.wait()
    # The watchdog sees EOF on its pipe at once, kills the servers and removes the run dir.
    sandbox.assert_nothing_left(GONE_TIMEOUT)


def test_sweep_removes_run_whose_watchdog_died(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox)
    watchdogs = sandbox.watchdogs()
    assert len(watchdogs) == 1, sandbox.leftovers()
    os.kill(watchdogs[0], signal.SIGKILL)
    poll_until(lambda: not sandbox.watchdogs(), GONE_TIMEOUT, lambda: "watchdog survived SIGKILL")
    holder.proc.kill()
    holder.proc.wait()
    (old_run,) = sandbox.run_dirs()
    for pid in holder.server_pids:
        assert sandbox.owns(pid), f"server {pid} died without watchdog or sweep"

    # Any new run in the same state dir sweeps the dead one.
    res = sandbox.run(["-c", "from harness.runs import Run; Run().close()"], timeout=60)
    assert res.returncode == 0, res.stderr
    assert not old_run.exists(), f"old run dir {old_run} not swept"
    poll_until(
        lambda: not any(sandbox.owns(pid) for pid in holder.server_pids),
        GONE_TIMEOUT,
        lambda: f"servers survived the sweep: {sandbox.leftovers()}",
    )
    sandbox.assert_nothing_left()


@pytest.mark.parametrize("to_group", [False, True], ids=["pid", "process-group"])
def test_ctrl_c_pytest_leaves_nothing(sandbox: Sandbox, to_group: bool) -> None:
    """SIGINT to pytest alone, or to its whole process group as a terminal's Ctrl-C does."""
    holder = start_holder(sandbox, new_session=to_group)
    if to_group:
        os.killpg(holder.proc.pid, signal.SIGINT)
    else:
        holder.proc.send_signal(signal.SIGINT)
    holder.assert_interrupted(timeout=30)
    sandbox.assert_nothing_left()
