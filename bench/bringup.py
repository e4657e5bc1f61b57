"""Bring-up benchmark: time to a READY 3 masters x 1 replica cluster.

Two ways to get there are timed on the same binary, the same server config and the
same readiness bar, in alternating order:

* **harness**: ``Cluster.start(impl, ClusterSpec(masters=3, replicas=1))`` (process start,
  formation by cluster commands, wait for readiness);
* **reference**: six plain server processes started here, formed by
  ``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes``, then waited for
  with the harness's own readiness probe (:meth:`Cluster.wait_ready` on a ``Cluster``
  built around those nodes): every node ``cluster_state:ok`` with all 16384 slots
  assigned and ok, all nodes agreeing on the map and the roles, and every replica with
  ``master_link_status:up`` and ``master_sync_in_progress:0``.

Both clocks start before any process is spawned (port claim, config files and data
directories included, as in ``Cluster.start``) and stop when the cluster is ready.
Every process started here runs in its own session, is registered with the harness's
:class:`~harness.runs.Run` and is stopped at the end, on an error, Ctrl-C or SIGTERM; it
also gets SIGKILL from the kernel if this script dies (see :func:`_die_with_parent`).

Usage: ``.venv/bin/python bench/bringup.py [--reps N] [--impl NAME | --impl-binary PATH]
[--cli PATH] [--json PATH]``. Exit status: 0 done, 1 a bring-up failed, 2 bad usage or
redis-cli missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import redis

from harness.backends.base import Backend, Node, NodeConfig, render_config
from harness.cluster import Cluster, ClusterSpec
from harness.errors import HarnessError, NotReadyError
from harness.impl import Implementation, resolve
from harness.ports import PortLease
from harness.runs import Run

TARGET_MS = 2300.0
SPEC = ClusterSpec(masters=3, replicas=1)
HOST = "127.0.0.1"
ANSWER_TIMEOUT_S = 15.0  # same as the local backend's wait for PING
CLI_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent(parent: int) -> Callable[[], None]:
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


# -- reference: plain processes ------------------------------------------------------
class PlainNode(Node):
    """A server process started directly from a rendered config (no harness backend)."""

    def __init__(self, run: Run, binary: str, index: int, port: int, directory: Path) -> None:
        self.run = run
        self.binary = binary
        self.index = index
        self.host = HOST
        self.port = port
        self.dir = directory
        self.conf_path = directory / "server.conf"
        self.log_path = directory / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "new"

    @property
    def description(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"{self.name} {self.addr} (pid {pid}, dir {self.dir})"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            try:
                self.proc = subprocess.Popen(
                    [self.binary, str(self.conf_path)],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=self.run.env(),  # marks the process as this run's for the sweep
                    preexec_fn=_die_with_parent(os.getpid()),
                )
            except OSError as exc:
                raise HarnessError(f"cannot start {self.binary}: {exc.strerror}") from exc
        self.run.register(self.proc.pid)
        self.state = "running"

    def wait_answering(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client(timeout=0.5)
        last = "no answer yet"
        try:
            while True:
                if self.proc is None or self.proc.poll() is not None:
                    self._reap()
                    tail = " | ".join(self.log_text(2000).splitlines()[-3:]) or "no output"
                    raise HarnessError(
                        f"reference {self.name} {self.addr} exited at start-up: {tail}"
                    )
                try:
                    if client.execute_command("PING") in ("PONG", b"PONG", True):  # type: ignore[no-untyped-call]
                        return
                except redis.exceptions.RedisError as exc:
                    last = str(exc)
                if time.monotonic() >= deadline:
                    raise NotReadyError(
                        f"reference {self.name} {self.addr} does not answer PING after {timeout:.0f}s: {last}"
                    )
                time.sleep(0.005)  # poll interval, same as the local backend
        finally:
            client.close()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError(f"{self.name} {self.addr} is not running")
        os.killpg(self.proc.pid, sig)

    def _reap(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.run.unregister(self.proc.pid)
        self.state = "stopped"

    def kill(self) -> None:
        self._reap()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)
        self.state = "paused"

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self.state = "running"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.state == "paused":
                self.resume()
            os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        self._reap()

    def log_text(self, max_bytes: int = 20000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-max_bytes:].decode(errors="replace")


class PlainBackend(Backend):
    """Owns the reference processes: ports from a PortLease, data dirs in a temporary
    directory inside the run directory (so the watchdog also removes it)."""

    name = "plain"

    def __init__(self, run: Run) -> None:
        self.run = run
        self.lease = PortLease()
        self.nodes: list[PlainNode] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def create_nodes(
        self, impl: Implementation, cfg: NodeConfig, count: int, ports: list[int] | None = None
    ) -> list[Node]:
        ports = self.lease.claim_exact(ports) if ports else self.lease.claim(count)
        self._tmp = tempfile.TemporaryDirectory(prefix="reference-", dir=self.run.dir)
        base = Path(self._tmp.name)
        nodes = []
        for i, port in enumerate(ports):
            d = base / f"node-{port}"
            d.mkdir()
            node = PlainNode(self.run, impl.binary, i, port, d)
            node.conf_path.write_text(
                render_config(impl, cfg, port=port, bind=HOST, data_dir=str(d))
            )
            nodes.append(node)
        self.nodes.extend(nodes)
        for n in nodes:
            n.start()
        for n in nodes:
            n.wait_answering(ANSWER_TIMEOUT_S)
        return list(nodes)

    def close(self) -> None:
        for n in self.nodes:
            n._reap()
        self.nodes.clear()
        self.lease.release()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def cli_create(cli: str, run: Run, nodes: list[Node], replicas: int) -> None:
    """``redis-cli --cluster create``; its own session, registered with the run."""
    cmd = [cli, "--cluster", "create", *(n.addr for n in nodes)]
    cmd += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=run.env(),
        preexec_fn=_die_with_parent(os.getpid()),
    )
    run.register(proc.pid)
    try:
        try:
            out, _ = proc.communicate(timeout=CLI_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise NotReadyError(
                f"`{' '.join(cmd)}` did not finish in {CLI_TIMEOUT_S:.0f}s"
            ) from exc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        run.unregister(proc.pid)
    if proc.returncode != 0:
        tail = " | ".join(out.decode(errors="replace").strip().splitlines()[-3:])
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}")


# -- samples -------------------------------------------------------------------------
Kind = Literal["harness", "reference"]


@dataclass
class Sample:
    kind: Kind
    rep: int
    ms: float
    phases: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        detail = ", ".join(f"{k} {v:.0f} ms" for k, v in self.phases.items())
        return f"rep {self.rep}  {self.kind:<9}  {self.ms:7.0f} ms" + (
            f"  ({detail})" if detail else ""
        )


def check_shape(cluster: Cluster) -> None:
    """After the clock stopped: the cluster really is 3 masters with 1 replica each."""
    view = cluster.view(cluster.nodes[0], with_shards=False)
    masters = [e for e in view.nodes if e.is_master and e.slots]
    replicas = [e for e in view.nodes if e.is_replica]
    per_master = sorted(sum(1 for r in replicas if r.master_id == m.node_id) for m in masters)
    want = [cluster.spec.replicas] * cluster.spec.masters
    if per_master != want:
        raise HarnessError(
            f"{cluster.describe()}: expected {cluster.spec.masters} masters with "
            f"{cluster.spec.replicas} replica(s) each, got replicas per master {per_master}"
        )


def harness_sample(impl: Implementation, rep: int) -> Sample:
    t0 = time.monotonic()
    with Cluster.start(impl, SPEC) as cluster:
        ms = (time.monotonic() - t0) * 1000
        check_shape(cluster)
        return Sample("harness", rep, ms, {"bringup_ms": cluster.bringup_ms})


def reference_sample(impl: Implementation, cli: str, run: Run, rep: int) -> Sample:
    backend = PlainBackend(run)
    try:
        t0 = time.monotonic()
        nodes = backend.create_nodes(impl, SPEC.node_config(), SPEC.size)
        t1 = time.monotonic()
        cli_create(cli, run, nodes, SPEC.replicas)
        t2 = time.monotonic()
        cluster = Cluster(SPEC, impl, backend, nodes)
        cluster.wait_ready(SPEC.ready_timeout_s)
        t3 = time.monotonic()
        check_shape(cluster)
    finally:
        backend.close()
    phases = {
        "processes": (t1 - t0) * 1000,
        "redis-cli": (t2 - t1) * 1000,
        "ready wait": (t3 - t2) * 1000,
    }
    return Sample("reference", rep, (t3 - t0) * 1000, phases)


# -- main ------------------------------------------------------------------------------
def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the same cleanup as Ctrl-C


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=5, help="repetitions of each (default 5)")
    p.add_argument(
        "--impl",
        metavar="NAME",
        help="implementation profile, e.g. redis-7.0, valkey-8.0, redis-6.2",
    )
    p.add_argument("--impl-binary", metavar="PATH", help="server binary to benchmark")
    p.add_argument(
        "--cli",
        metavar="PATH",
        default="redis-cli",
        help="redis-cli to use (default: redis-cli on PATH)",
    )
    p.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cli = shutil.which(args.cli)
    if cli is None:
        print(
            f"bringup: {args.cli} not found; install redis-cli (redis-tools) or pass --cli PATH",
            file=sys.stderr,
        )
        return 2
    try:
        impl = resolve(args.impl, args.impl_binary)
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    cli_version = subprocess.run(
        [cli, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    ).stdout.strip()

    signal.signal(signal.SIGTERM, _terminate)
    run = Run.current()  # created up front: its watchdog start is not part of any sample
    print(f"bring-up to READY of {SPEC.masters}x{SPEC.replicas}, {impl.describe()}")
    print(f"reference: {cli_version} --cluster create; {args.reps} reps, alternating order")
    samples: dict[Kind, list[Sample]] = {"harness": [], "reference": []}
    try:
        for rep in range(1, args.reps + 1):
            order: tuple[Kind, Kind] = (
                ("harness", "reference") if rep % 2 else ("reference", "harness")
            )
            for kind in order:
                s = (
                    harness_sample(impl, rep)
                    if kind == "harness"
                    else reference_sample(impl, cli, run, rep)
                )
                samples[kind].append(s)
                print(s.line(), flush=True)
    except KeyboardInterrupt:
        print("bringup: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()

    med_h = statistics.median(s.ms for s in samples["harness"])
    med_r = statistics.median(s.ms for s in samples["reference"])
    ratio = med_h / med_r
    met = med_h <= TARGET_MS
    print(f"median harness    {med_h:7.0f} ms")
    print(f"median reference  {med_r:7.0f} ms")
    print(f"ratio harness/reference {ratio:.2f}")
    print(
        f"target harness median <= {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'} ({med_h:.0f} ms)"
    )

    if args.json:
        result: dict[str, Any] = {
            "impl": {
                "name": impl.name,
                "flavor": impl.flavor,
                "version": impl.version_str,
                "binary": impl.binary,
            },
            "cli": {"path": cli, "version": cli_version},
            "spec": {
                "masters": SPEC.masters,
                "replicas": SPEC.replicas,
                "node_timeout_ms": SPEC.node_timeout_ms,
            },
            "reps": args.reps,
            "samples": [
                {
                    "kind": s.kind,
                    "rep": s.rep,
                    "ms": round(s.ms, 1),
                    "phases": {k: round(v, 1) for k, v in s.phases.items()},
                }
                for kind in ("harness", "reference")
                for s in samples[kind]
            ],
            "median_ms": {"harness": round(med_h, 1), "reference": round(med_r, 1)},
            "ratio": round(ratio, 3),
            "target_ms": TARGET_MS,
            "target_met": met,
        }
        try:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        except OSError as exc:
            print(f"bringup: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
