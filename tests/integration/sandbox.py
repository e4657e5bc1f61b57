"""Subprocess sandboxes for the tests that run the harness the way users do.

Each test gets a private directory with its own ``HARNESS_STATE_DIR`` and a unique
``LEAKTEST`` marker in the environment of every subprocess it starts. Every process the
harness starts inherits the marker, so scanning ``/proc/*/environ`` for it finds anything
that survived. The ``sandbox`` fixture (``conftest.py`` here) hands one to a test and kills
whatever of it is still alive afterwards.

A plain module, not a package: pytest's default ("prepend") import mode puts this
directory on ``sys.path`` for the ``conftest.py`` and the test modules next to it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import pytest

CLI_ERROR = re.compile(r"^(harness: error: .+|python -m harness \w+: error: .+ \(see --help\))$")
USAGE_ERROR = 4  # pytest.ExitCode.USAGE_ERROR
INTERRUPTED = 2  # pytest.ExitCode.INTERRUPTED
GONE_TIMEOUT = 10.0  # how long a clean exit, the watchdog or a sweep may take to stop everything
POLL_S = 0.02
PYTEST = ("-m", "pytest", "-p", "no:cacheprovider")  # an inner pytest: `python *PYTEST ...`


@dataclass
class Sandbox:
    """A private directory, state dir and unique marker for one test's subprocesses."""

    dir: Path
    state: Path
    marker: str

    gone_timeout: ClassVar[float] = GONE_TIMEOUT  # assert_nothing_left's default
    poll_s: ClassVar[float] = POLL_S

    @classmethod
    def create(cls, tmp_path: Path) -> Self:
        return cls(tmp_path, tmp_path / "state", uuid.uuid4().hex)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_RUN_ID", "PYTEST_ADDOPTS")}
        env.update(HARNESS_STATE_DIR=str(self.state), LEAKTEST=self.marker, PYTHONUNBUFFERED="1")
        return env

    # -- leak detection ---------------------------------------------------------------------

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
            if self.has_marker(pid):
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

    def has_marker(self, pid: int) -> bool:
        """Whether ``/proc/<pid>/environ`` holds the marker (raises OSError when gone)."""
        needle = f"LEAKTEST={self.marker}".encode()
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")

    @property
    def _root(self) -> str:
        return os.path.realpath(self.dir)

    def pids(self) -> list[int]:
        """Live processes of this sandbox (see :meth:`owns`)."""
        return [
            int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and self.owns(int(e.name))
        ]

    def run_dirs(self) -> list[Path]:
        runs = self.state / "runs"
        return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def watchdogs(self) -> list[int]:
        return [p for p in self.pids() if "harness.runs" in cmdline(p) and "--watch" in cmdline(p)]

    def leftovers(self) -> str:
        procs = {p: cmdline(p) for p in self.pids()}
        return f"processes {procs}, run dirs {[d.name for d in self.run_dirs()]}"

    def assert_nothing_left(self, timeout: float | None = None) -> None:
        """Wait (bounded) until no process and no run directory of the sandbox remain."""
        limit = self.gone_timeout if timeout is None else timeout
        poll_until(
            lambda: not self.pids() and not self.run_dirs(),
            limit,
            lambda: f"leftovers after {limit:.0f}s: {self.leftovers()}",
            interval=self.poll_s,
        )

    def kill_leftovers(self) -> None:
        """SIGKILL every live process of the sandbox: a test's leak must not outlive it."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    # -- subprocesses: `python ARGV` in the sandbox -----------------------------------------

    def popen(
        self, argv: list[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, *argv],
            cwd=self.dir,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            text=True,
            **kwargs,
        )

    def run(
        self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python ARGV`` to its end (bounded); stdout and stderr apart."""
        proc = self.popen(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = communicate(proc, argv, timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def spawn(
        self, argv: list[str], env: dict[str, str] | None = None, *, new_session: bool = False
    ) -> Spawned:
        """Start ``python ARGV`` with its output (both streams) in a file of the sandbox."""
        output = self.dir / f"output-{uuid.uuid4().hex[:6]}.txt"
        with output.open("w") as out:
            proc = self.popen(
                argv,
                env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
                # A terminal delivers Ctrl-C to a process that handles it; when this suite
                # itself runs in the background (`cmd &`, nohup), SIGINT is inherited as
                # ignored and Python would never raise KeyboardInterrupt.
                preexec_fn=_default_sigint,
            )
        return Spawned(proc, output)

    def hold(
        self,
        test_source: str,
        *pytest_args: str,
        env: dict[str, str] | None = None,
        timeout: float,
        new_session: bool = False,
    ) -> tuple[Spawned, str]:
        """Start a pytest running ``test_source`` (as ``test_hold.py``), whose test writes
        the file named by ``READY_FILE`` once its cluster is ready; return the pytest and
        that file's text once it is there. On any failure the pytest is killed."""
        (self.dir / "test_hold.py").write_text(test_source)
        ready = self.dir / "ready"
        env = {**(env or self.env), "READY_FILE": str(ready)}
        argv = [*PYTEST, "-s", *pytest_args, "test_hold.py"]
        spawned = self.spawn(argv, env, new_session=new_session)
        proc = spawned.proc
        try:
            poll_until(
                lambda: ready.exists() or proc.poll() is not None,
                timeout,
                lambda: f"cluster not ready after {timeout:.0f}s; {spawned.describe()}",
                interval=self.poll_s,
            )
            assert ready.exists(), (
                f"pytest ended before the cluster was ready; {spawned.describe()}"
            )
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return spawned, ready.read_text()


@dataclass
class Spawned:
    """A subprocess whose output goes to a file."""

    proc: subprocess.Popen[str]
    output: Path

    def describe(self) -> str:
        return f"exit {self.proc.poll()}; output:\n{self.output.read_text(errors='replace')}"

    def wait_ended(self, timeout: float, what: str) -> None:
        """Wait (bounded) for the process to end; if it does not, kill it and fail with
        ``what``."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"{what}; {self.describe()}")

    def assert_interrupted(self, timeout: float) -> None:
        """After a SIGINT: the (inner) pytest ends, as interrupted, within ``timeout``."""
        self.wait_ended(timeout, "pytest did not stop on SIGINT")
        assert self.proc.returncode == INTERRUPTED, self.describe()
        assert "KeyboardInterrupt" in self.output.read_text(), self.describe()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def communicate(proc: subprocess.Popen[str], argv: list[str], timeout: float) -> tuple[str, str]:
    """``proc``'s stdout and stderr once it ended; the test fails if that takes too long."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"`python {' '.join(argv)}` did not end in {timeout:.0f}s:\n{out}\n{err}")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def poll_until(
    cond: Callable[[], object],
    timeout: float,
    what: Callable[[], str],
    *,
    interval: float = POLL_S,
) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            pytest.fail(what())
        time.sleep(interval)


# -- what a finished subprocess said ----------------------------------------------------------


class Outcome(Protocol):
    returncode: int
    stdout: str
    stderr: str


def outcome(res: Outcome) -> str:
    return f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def assert_one_line_cli_error(res: Outcome, *expect: str) -> str:
    """A failure of ``python -m harness``: nothing on stdout, one error line on stderr that
    holds every ``expect``, no traceback. Returns that line."""
    out = outcome(res)
    assert res.returncode != 0, out
    assert "Traceback" not in res.stdout + res.stderr, out
    assert res.stdout.strip() == "", out
    err = lines(res.stderr)
    assert len(err) == 1, out
    assert CLI_ERROR.match(err[0]), out
    for text in expect:
        assert text in err[0], out
    return err[0]


def assert_pytest_usage_error(res: Outcome, *expect: str) -> str:
    """A pytest (with the plugin) that stops at a usage error: one ``ERROR:`` line on
    stderr that holds every ``expect``, no traceback. Returns that line."""
    out = outcome(res)
    assert res.returncode == USAGE_ERROR, out
    assert "Traceback" not in res.stdout + res.stderr, out
    err = lines(res.stderr)
    assert len(err) == 1, out
    assert err[0].startswith("ERROR: "), out
    for text in expect:
        assert text in err[0], out
    return err[0]
