"""Nothing of a run survives it: failed tests, signals, SIGKILL, and a dead watchdog.

Each test runs the harness in a subprocess with its own ``HARNESS_STATE_DIR`` and a unique
``LEAKTEST`` marker in the environment. Server processes and the watchdog inherit the
marker, so scanning ``/proc/*/environ`` for it finds whatever the run left behind, even a
process that no longer has the run's ``HARNESS_RUN_ID`` registered anywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")

START_TIMEOUT = 60.0  # bounded waits for a cluster to come up (normally ~2 s)
GONE_TIMEOUT = 10.0  # how long the watchdog / sweep may take to remove a run
INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED


# -- isolation and leak detection -------------------------------------------------------


@dataclass
class Sandbox:
    """A private directory, state dir and unique marker for one test's subprocesses."""

    dir: Path
    state: Path
    marker: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_RUN_ID", "PYTEST_ADDOPTS")}
        env.update(HARNESS_STATE_DIR=str(self.state), LEAKTEST=self.marker, PYTHONUNBUFFERED="1")
        return env

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a live process of this sandbox.

        The marker in ``/proc/<pid>/environ`` finds the harness and its watchdog, but not
        the servers: redis-server and valkey-server overwrite their original environment
        block with their process title, so their ``environ`` no longer shows it. A server
        is found by its working directory or an open file (its log) inside the sandbox,
        which stay visible even after the directory is deleted. Zombies own nothing.
        """
        if pid == os.getpid():
            return False
        proc = f"/proc/{pid}"
        try:
            if self._needle in Path(proc, "environ").read_bytes().split(b"\0"):
                return True
            links = [f"{proc}/cwd"] + [f"{proc}/fd/{fd}" for fd in os.listdir(f"{proc}/fd")]
        except OSError:
            return False
        for link in links:
            with contextlib.suppress(OSError):
                target = os.readlink(link).removesuffix(" (deleted)")
                if target == self._root or target.startswith(self._root + "/"):
                    return True
        return False

    @property
    def _needle(self) -> bytes:
        return f"LEAKTEST={self.marker}".encode()

    @property
    def _root(self) -> str:
        return os.path.realpath(self.dir)

    def pids(self) -> list[int]:
        """Live processes of this sandbox: the harness, its watchdog, servers."""
        return [
            int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and self.owns(int(e.name))
        ]

    def run_dirs(self) -> list[Path]:
        runs = self.state / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def leftovers(self) -> str:
        procs = {p: cmdline(p) for p in self.pids()}
        return f"processes {procs}, run dirs {[d.name for d in self.run_dirs()]}"

    def assert_nothing_left(self, timeout: float = GONE_TIMEOUT) -> None:
        """Wait (bounded) until no process and no run directory of the sandbox remain."""
        poll_until(
            lambda: not self.pids() and not self.run_dirs(),
            timeout,
            lambda: f"leftovers after {timeout:.0f}s: {self.leftovers()}",
        )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def poll_until(cond: Callable[[], object], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            pytest.fail(what())
        time.sleep(0.02)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, tmp_path / "state", uuid.uuid4().hex)
    yield box
    for pid in box.pids():  # never let one test's leak outlive it (or spill into the next)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


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
class Holder:
    proc: subprocess.Popen[bytes]
    output: Path
    server_pids: list[int]

    def describe(self) -> str:
        return f"exit {self.proc.poll()}; output:\n{self.output.read_text(errors='replace')}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_holder(box: Sandbox, *, new_session: bool = False) -> Holder:
    """Start a pytest whose test holds a 1-node cluster; return once the cluster is ready."""
    (box.dir / "test_hold.py").write_text(HOLDING_TEST)
    ready = box.dir / "ready"
    output = box.dir / "pytest-output.txt"
    env = {**box.env, "READY_FILE": str(ready)}
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", "test_hold.py"],
            cwd=box.dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            # A terminal delivers Ctrl-C to a process that handles it; when this suite
            # itself runs in the background (`cmd &`, nohup), SIGINT is inherited as
            # ignored and Python would never raise KeyboardInterrupt.
            preexec_fn=_default_sigint,
        )
    holder = Holder(proc, output, [])
    try:
        poll_until(
            lambda: ready.exists() or proc.poll() is not None,
            START_TIMEOUT,
            lambda: f"cluster not ready after {START_TIMEOUT:.0f}s; {holder.describe()}",
        )
        assert proc.poll() is None, (
            f"pytest ended before the cluster was ready; {holder.describe()}"
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    holder.server_pids = [int(p) for p in ready.read_text().split()]
    assert holder.server_pids, holder.describe()
    for pid in holder.server_pids:
        assert box.owns(pid), f"server {pid} not found as a process of the sandbox"
    assert len(box.run_dirs()) == 1, box.leftovers()
    return holder


def find_watchdogs(box: Sandbox) -> list[int]:
    return [
        pid for pid in box.pids() if "harness.runs" in cmdline(pid) and "--watch" in cmdline(pid)
    ]


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
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_fails.py"],
        cwd=sandbox.dir,
        env=sandbox.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    out = f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
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
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "up", "--masters", "1", "--replicas", "0"],
        cwd=sandbox.dir,
        env=sandbox.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
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
    assert find_watchdogs(sandbox), sandbox.leftovers()
    holder.proc.kill()
    holder.proc.wait()
    # The watchdog sees EOF on its pipe at once, kills the servers and removes the run dir.
    sandbox.assert_nothing_left(GONE_TIMEOUT)


def test_sweep_removes_run_whose_watchdog_died(sandbox: Sandbox) -> None:
    holder = start_holder(sandbox)
    watchdogs = find_watchdogs(sandbox)
    assert len(watchdogs) == 1, sandbox.leftovers()
    os.kill(watchdogs[0], signal.SIGKILL)
    poll_until(
        lambda: not find_watchdogs(sandbox), GONE_TIMEOUT, lambda: "watchdog survived SIGKILL"
    )
    holder.proc.kill()
    holder.proc.wait()
    (old_run,) = sandbox.run_dirs()
    for pid in holder.server_pids:
        assert sandbox.owns(pid), f"server {pid} died without watchdog or sweep"

    # Any new run in the same state dir sweeps the dead one.
    res = subprocess.run(
        [sys.executable, "-c", "from harness.runs import Run; Run().close()"],
        cwd=sandbox.dir,
        env=sandbox.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
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
    try:
        holder.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        holder.proc.kill()
        holder.proc.wait()
        pytest.fail(f"pytest did not stop on SIGINT; {holder.describe()}")
    assert holder.proc.returncode == INTERRUPTED, holder.describe()
    assert "KeyboardInterrupt" in holder.output.read_text(), holder.describe()
    sandbox.assert_nothing_left()
