"""Bad input to ``python -m harness`` and to the pytest plugin.

Every case must fail with a non-zero status and one line that says what is wrong (no
traceback), and must leave no server process or run directory behind. Each subprocess gets
its own ``HARNESS_STATE_DIR`` and a unique ``LEAKTEST`` marker in its environment; every
process the harness starts inherits the marker, so scanning ``/proc/*/environ`` for it
finds anything that survived.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HAVE_REDIS = shutil.which("redis-server") is not None
needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not on PATH")

CLI_ERROR = re.compile(r"^(harness: error: .+|python -m harness \w+: error: .+ \(see --help\))$")
TIMEOUT = 60  # a case that slips through validation would start a whole suite or block in `up`
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR
GONE_TIMEOUT = 10.0  # how long a clean exit may take to stop everything


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


def harness(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=box.dir,
        env=box.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )


def inner_pytest(box: Sandbox, test_source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (box.dir / "test_generated.py").write_text(test_source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_generated.py", *args],
        cwd=box.dir,
        env=box.env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
    )


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_one_line_cli_error(res: subprocess.CompletedProcess[str], *expect: str) -> str:
    out = f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert res.returncode != 0, out
    assert "Traceback" not in res.stdout + res.stderr, out
    assert res.stdout.strip() == "", out
    err = lines(res.stderr)
    assert len(err) == 1, out
    assert CLI_ERROR.match(err[0]), out
    for text in expect:
        assert text in err[0], out
    return err[0]


def assert_pytest_usage_error(res: subprocess.CompletedProcess[str], *expect: str) -> str:
    out = f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert res.returncode == USAGE_ERROR, out
    assert "Traceback" not in res.stdout + res.stderr, out
    err = lines(res.stderr)
    assert len(err) == 1, out
    assert err[0].startswith("ERROR: "), out
    for text in expect:
        assert text in err[0], out
    return err[0]


def free_ports(count: int = 1) -> int:
    """A first client port P in the harness range such that P..P+count-1 and their bus
    ports (+10000) are all bindable now."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(12000, 22000 - count)
        if all(_bindable(q) and _bindable(q + 10000) for q in range(port, port + count)):
            return port
    raise RuntimeError(f"no {count} free consecutive ports in 12000-21999")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# -- python -m harness run -----------------------------------------------------------------


def _not_redis(box: Sandbox) -> str:
    script = box.dir / "hello.sh"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    return str(script)


def _not_executable(box: Sandbox) -> str:
    path = box.dir / "plain-file"
    path.write_text("not a program\n")
    path.chmod(0o644)
    return str(path)


def _a_directory(box: Sandbox) -> str:
    path = box.dir / "a-directory"
    path.mkdir()
    return str(path)


@pytest.mark.parametrize(
    ("make_binary", "expect"),
    [
        (lambda box: "/nonexistent", ["/nonexistent", "no such file"]),
        (_not_executable, ["plain-file", "not an executable"]),
        (_a_directory, ["a-directory", "not an executable"]),
        (_not_redis, ["hello.sh", "not a Redis-compatible server", "hello"]),
    ],
    ids=["missing", "not-executable", "directory", "not-redis"],
)
def test_run_bad_impl_binary(sandbox: Sandbox, make_binary, expect: list[str]) -> None:
    res = harness(sandbox, "run", "--impl-binary", make_binary(sandbox))
    line = assert_one_line_cli_error(res, *expect)
    assert line.startswith("harness: error: --impl-binary ")
    sandbox.assert_nothing_left()


RUN_CASES = [
    (["--impl", "bogus"], ["--impl bogus", "unknown implementation", "redis-7.0"]),
    (["--suite", "nope"], ["--suite", "'nope'", "conformance"]),
    (["--node-timeout", "abc"], ["--node-timeout", "'abc'", "whole number"]),
    (["--node-timeout", "5"], ["--node-timeout", "50..600000", "got 5"]),
    (["--seed", "x"], ["--seed", "'x'", "whole number"]),
    (["--backend", "nope"], ["--backend nope", "unknown backend", "local"]),
]


@pytest.mark.parametrize(("args", "expect"), RUN_CASES, ids=[" ".join(a) for a, _ in RUN_CASES])
def test_run_bad_option(sandbox: Sandbox, args: list[str], expect: list[str]) -> None:
    res = harness(sandbox, "run", *args)
    assert_one_line_cli_error(res, *expect)
    sandbox.assert_nothing_left()


@pytest.mark.skipif(
    not (HAVE_REDIS and shutil.which("valkey-server")),
    reason="needs redis-server and valkey-server",
)
def test_run_impl_and_binary_disagree(sandbox: Sandbox) -> None:
    valkey = shutil.which("valkey-server")
    assert valkey is not None
    res = harness(sandbox, "run", "--impl", "redis-7.0", "--impl-binary", valkey)
    assert_one_line_cli_error(res, "--impl redis-7.0", "disagree", "valkey")
    sandbox.assert_nothing_left()


# -- python -m harness up --------------------------------------------------------------------


@needs_redis
@pytest.mark.parametrize("busy", ["client", "bus"])
def test_up_busy_port(sandbox: Sandbox, busy: str) -> None:
    port = free_ports()
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", port if busy == "client" else port + 10000))
        blocker.listen()
        res = harness(sandbox, "up", "--port", str(port), "--masters", "1", "--replicas", "0")
    finally:
        blocker.close()
    assert_one_line_cli_error(res, f"port {port}", "busy")
    sandbox.assert_nothing_left()


@needs_redis
def test_up_busy_port_in_later_node(sandbox: Sandbox) -> None:
    """``--port P`` claims P..P+size-1: a busy port after the first fails the same way."""
    port = free_ports(3)
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", port + 2))
        blocker.listen()
        res = harness(sandbox, "up", "--port", str(port), "--masters", "3", "--replicas", "0")
    finally:
        blocker.close()
    assert_one_line_cli_error(res, f"port {port + 2}", "busy")
    sandbox.assert_nothing_left()


def test_up_zero_masters(sandbox: Sandbox) -> None:
    res = harness(sandbox, "up", "--masters", "0")
    assert_one_line_cli_error(res, "--masters", "1..64", "got 0")
    sandbox.assert_nothing_left()


@needs_redis
def test_up_server_arg_one_word(sandbox: Sandbox) -> None:
    res = harness(sandbox, "up", "--masters", "1", "--replicas", "0", "--server-arg", "nonsense")
    assert_one_line_cli_error(res, "--server-arg 'nonsense'", "NAME VALUE")
    sandbox.assert_nothing_left()


@needs_redis
@pytest.mark.parametrize(("masters", "replicas"), [(1, 0), (2, 1)])
def test_up_server_refuses_directive(sandbox: Sandbox, masters: int, replicas: int) -> None:
    res = harness(
        sandbox,
        "up",
        "--masters",
        str(masters),
        "--replicas",
        str(replicas),
        "--server-arg",
        "no-such-directive 1",
    )
    line = assert_one_line_cli_error(res, "exited at start-up")
    assert line.startswith("harness: error: ")
    assert "Bad directive" in line or "FATAL" in line, line
    assert "no-such-directive" in line, line
    sandbox.assert_nothing_left()


# -- pytest with the plugin ------------------------------------------------------------------

TRIVIAL = "def test_nothing():\n    pass\n"


PYTEST_CASES = [
    (["--impl", "bogus"], ["--impl bogus", "unknown implementation"]),
    (["--impl-binary", "/nonexistent"], ["--impl-binary /nonexistent", "no such file"]),
    (["--node-timeout", "abc"], ["--node-timeout 'abc'", "whole number"]),
    (["--node-timeout", "5"], ["--node-timeout 5", "50..600000"]),
    (["--seed", "x"], ["--seed 'x'", "whole number"]),
    (["--backend", "nope"], ["--backend nope", "unknown backend"]),
]


@pytest.mark.parametrize(
    ("args", "expect"), PYTEST_CASES, ids=[" ".join(a) for a, _ in PYTEST_CASES]
)
def test_pytest_bad_option(sandbox: Sandbox, args: list[str], expect: list[str]) -> None:
    res = inner_pytest(sandbox, TRIVIAL, *args)
    assert_pytest_usage_error(res, *expect)
    sandbox.assert_nothing_left()


@needs_redis
def test_pytest_unknown_capability(sandbox: Sandbox) -> None:
    source = (
        "import pytest\n\n"
        '@pytest.mark.requires("no_such_capability")\n'
        "def test_needs_it(cluster):\n"
        "    pass\n"
    )
    res = inner_pytest(sandbox, source)
    assert_pytest_usage_error(res, "no_such_capability", "test_needs_it")
    sandbox.assert_nothing_left()


@needs_redis
def test_pytest_cluster_mark_zero_masters(sandbox: Sandbox) -> None:
    source = (
        "import pytest\n\n"
        "@pytest.mark.cluster(masters=0)\n"
        "def test_empty(cluster):\n"
        "    pass\n\n"
        "def test_unaffected():\n"
        "    pass\n"
    )
    res = inner_pytest(sandbox, source, "-ra", "-vv")  # -vv: summary lines are not truncated
    out = f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert res.returncode == 1, out  # TESTS_FAILED: the test errors, the session goes on
    assert "1 passed, 1 error" in res.stdout, out
    summary = [ln for ln in res.stdout.splitlines() if ln.startswith("ERROR test_generated.py")]
    assert len(summary) == 1, out
    assert "test_empty" in summary[0] and "masters=0: use 1..64" in summary[0], out
    assert "ERROR at setup of test_empty" in res.stdout, out
    assert "Traceback" not in res.stderr, out
    sandbox.assert_nothing_left()
