"""Running the cluster tool where the cluster is: a process on this host (local nodes),
or a one-off container of the nodes' image on the cluster's network (docker nodes, whose
image carries the tool; see :mod:`harness.images.binary`).

Credentials. The password never appears in an argument list, a log or a report: it goes
in ``REDISCLI_AUTH`` (``-a`` would also make the tool print a warning into the output
that is parsed); an ACL user is ``--user``. TLS uses the cluster's CA and the harness's
client certificate (mounted read-only into the container). ``TERM=dumb`` keeps the
output free of colour codes.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clitool.locate import CliProgram
from harness.errors import HarnessError
from harness.runs import Run
from harness.security import Security

TLS_MOUNT = "/harness-tls"  # the cluster's tls/ directory inside the tool's container
_names = itertools.count()


@dataclass(frozen=True)
class CliRun:
    """One finished run of the tool: its arguments (no secrets), exit status, output
    (stdout and stderr together) and how long it took."""

    args: tuple[str, ...]
    code: int
    output: str
    duration_ms: float
    timed_out: bool = False

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


class CliError(HarnessError):
    """The tool failed (or hung): the message has the command and its output's tail;
    ``known_issue`` names the tool's own bug when the failure is a known one."""

    def __init__(
        self, message: str, result: CliRun | None = None, known_issue: str | None = None
    ) -> None:
        super().__init__(message)
        self.result = result
        self.known_issue = known_issue


def auth_env(security: Security) -> dict[str, str]:
    """The password for the tool's environment (both spellings: Valkey may rename it)."""
    if security.password is None:
        return {}
    return {"REDISCLI_AUTH": security.password, "VALKEYCLI_AUTH": security.password}


def security_args(security: Security, tls_dir: str | None = None) -> list[str]:
    """``--user`` and the TLS flags (files under ``tls_dir`` when the tool sees the
    cluster's TLS directory elsewhere, in a container)."""
    args = ["--user", security.user] if security.user is not None else []

    def where(f: Path | None) -> str:
        return str(f) if tls_dir is None or f is None else f"{tls_dir}/{f.name}"

    if security.ca_file is not None:
        args += ["--tls", "--cacert", where(security.ca_file)]
    if security.cert_file is not None:
        args += ["--cert", where(security.cert_file), "--key", where(security.key_file)]
    return args


class HostRunner:
    """The tool as a process of this run (registered, so the watchdog kills it if the
    harness dies; its working directory is the run's)."""

    def __init__(self, program: CliProgram, security: Security, run: Run | None = None) -> None:
        self.program = program
        self.security = security
        self.run_ = run or Run.current()

    def run(self, args: Sequence[str], *, input: str | None = None, timeout: float) -> CliRun:
        full = [*security_args(self.security), *args]
        env = {**self.run_.env(), "TERM": "dumb", **auth_env(self.security)}
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                [self.program.path, *full],
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=self.run_.dir,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise CliError(f"cannot run {self.program.path}: {exc.strerror}") from exc
        self.run_.register(proc.pid)
        timed_out = False
        try:
            try:
                out, _ = proc.communicate(input.encode() if input else None, timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
        except BaseException:  # Ctrl-C, a test deadline: the tool must not outlive the call
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            self.run_.unregister(proc.pid)
        ms = (time.monotonic() - t0) * 1000
        return CliRun(tuple(full), proc.returncode, out.decode(errors="replace"), ms, timed_out)


class ContainerRunner:
    """The tool in a one-off container of the nodes' image on the cluster's network,
    with the run's labels (the sweep removes it if the harness dies) and a fixed address
    at the top of the subnet, far from the nodes' (which count up from the bottom), so
    it never takes the address of a stopped node that will start again."""

    def __init__(self, program: CliProgram, security: Security, backend: Any) -> None:
        self.program = program
        self.security = security
        self.backend = backend  # a harness.backends.docker.DockerBackend
        self._lock = threading.Lock()  # one address: one run at a time

    def run(self, args: Sequence[str], *, input: str | None = None, timeout: float) -> CliRun:
        import docker.errors

        from harness.images.docker import DOCKER_ERRORS, reason

        be = self.backend
        tls = self.security.ca_file.parent if self.security.ca_file is not None else None
        full = [*security_args(self.security, TLS_MOUNT if tls else None), *args]
        ip = str(list(be.subnet.hosts())[-1])
        name = f"rch-{be.run.id[-6:]}-{be.cluster_id}-cli{next(_names)}"
        with self._lock:
            t0 = time.monotonic()
            container = None
            try:
                api = be.client.api
                binds = {str(tls): {"bind": TLS_MOUNT, "mode": "ro"}} if tls else None
                endpoint = api.create_endpoint_config(ipv4_address=ip)
                created = api.create_container(
                    self.program.image,
                    command=full,
                    entrypoint=[self.program.path],
                    environment={"TERM": "dumb", **auth_env(self.security)},
                    labels=be.labels(),
                    name=name,
                    host_config=api.create_host_config(binds=binds),
                    networking_config=api.create_networking_config({be.network_name: endpoint}),
                    stdin_open=input is not None,  # and closed at the end of the input
                )
                container = be.client.containers.get(created["Id"])
                timed_out = self._start(container, input, timeout)
                container.reload()
                code = int(container.attrs["State"].get("ExitCode", -1))
                out = container.logs(stdout=True, stderr=True).decode(errors="replace")
            except (*DOCKER_ERRORS, OSError) as exc:
                if isinstance(exc, docker.errors.ImageNotFound):
                    raise CliError(f"image {self.program.image} is gone") from exc
                raise CliError(f"cannot run {self.program.path} in {name}: {reason(exc)}") from exc
            finally:
                if container is not None:
                    with contextlib.suppress(*DOCKER_ERRORS):
                        container.remove(force=True)
        ms = (time.monotonic() - t0) * 1000
        return CliRun(tuple(full), code, out, ms, timed_out)

    @staticmethod
    def _start(container: Any, input: str | None, timeout: float) -> bool:
        """Start it (with ``input`` on its stdin) and wait; True if it had to be killed."""
        import requests

        if input is None:
            container.start()
        else:
            sock = container.client.api.attach_socket(
                container.id, params={"stdin": 1, "stream": 1}
            )
            try:
                container.start()
                raw = getattr(sock, "_sock", sock)
                raw.sendall(input.encode())
                raw.shutdown(socket.SHUT_WR)  # end of input: the tool reads EOF after it
            finally:
                sock.close()
        try:
            container.wait(timeout=timeout)
            return False
        except requests.RequestException:
            container.kill()
            container.wait(timeout=30)
            return True
