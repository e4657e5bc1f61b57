"""Bad input to ``python -m harness`` and to the pytest plugin.

Every case must fail with a non-zero status and one line that says what is wrong (no
traceback), and must leave no server process or run directory behind. Each subprocess runs
in a :class:`~sandbox.Sandbox` (own ``HARNESS_STATE_DIR``, unique ``LEAKTEST`` marker in its
environment), which finds anything that survived.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from sandbox import (
    PYTEST,
    Sandbox,
    assert_one_line_cli_error,
    assert_pytest_usage_error,
    outcome,
)

HAVE_REDIS = shutil.which("redis-server") is not None
needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="redis-server not on PATH")

TIMEOUT = 60  # a case that slips through validation would start a whole suite or block in `up`


def harness(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return box.run(["-m", "harness", *args], timeout=TIMEOUT)


def inner_pytest(box: Sandbox, test_source: str, *args: str) -> subprocess.CompletedProcess[str]:
    (box.dir / "test_generated.py").write_text(test_source)
    return box.run([*PYTEST, "test_generated.py", *args], timeout=TIMEOUT)


def free_ports(count: int = 1) -> int:
    """A first client port P in the harness range such that P..P+count-1 and their bus
    ports (+10000) are all bindable now."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(12000, 22000 - count)
        if all(_bindable(q) and _bindable(q + 10000) for q in range(port, port + count)):
            return port
    raise RuntimeError(f"no {count} free consecutive ports in 12000-21999")


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    """Something else listens on 127.0.0.1:``port`` for the duration of the block."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        yield


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
    with listening(port if busy == "client" else port + 10000):
        res = harness(sandbox, "up", "--port", str(port), "--masters", "1", "--replicas", "0")
    assert_one_line_cli_error(res, f"port {port}", "busy")
    sandbox.assert_nothing_left()


@needs_redis
def test_up_busy_port_in_later_node(sandbox: Sandbox) -> None:
    """``--port P`` claims P..P+size-1: a busy port after the first fails the same way."""
    port = free_ports(3)
    with listening(port + 2):
        res = harness(sandbox, "up", "--port", str(port), "--masters", "3", "--replicas", "0")
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
    out = outcome(res)
    assert res.returncode == 1, out  # TESTS_FAILED: the test errors, the session goes on
    assert "1 passed, 1 error" in res.stdout, out
    summary = [ln for ln in res.stdout.splitlines() if ln.startswith("ERROR test_generated.py")]
    assert len(summary) == 1, out
    assert "test_empty" in summary[0] and "masters=0: use 1..64" in summary[0], out
    assert "ERROR at setup of test_empty" in res.stdout, out
    assert "Traceback" not in res.stderr, out
    sandbox.assert_nothing_left()
