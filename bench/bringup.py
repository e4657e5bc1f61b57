"""Bring-up benchmark: time to a READY 3 masters x 1 replica cluster.

With ``--backend local`` (the default), two ways to get there are timed on the same
binary, the same server config and the same readiness bar, in alternating order:

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

With ``--backend docker``, the harness on its two backends is timed, in alternating order:
``Cluster.start(impl, ClusterSpec(masters=3, replicas=1), backend="docker")`` against
``backend="local"`` as the same-run reference, with a target for the docker median. The
image of the binary is built (or found unchanged) once before any clock runs, and that
warm-up is reported on its own. Each bring-up is also profiled by phase (backend set-up,
image lookup, network creation, every node start, waiting for PING, formation, readiness)
by timing those harness functions while the unmodified ``Cluster.start`` runs; the wrappers
are removed after each sample. Teardown is timed too, but is not part of a sample.

Usage: ``.venv/bin/python bench/bringup.py [--backend local|docker] [--reps N]
[--impl NAME | --impl-binary PATH] [--cli PATH] [--json PATH]``. Exit status: 0 done,
1 a bring-up failed, 2 bad usage, redis-cli missing (local) or Docker unusable (docker),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from benchlib import add_common_args, run_owned, stop_on_sigterm, write_json

from harness.backends import get_backend
from harness.backends.base import Node, NodeConfig, start_all
from harness.backends.local import LocalBackend, LocalNode
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import Implementation, resolve
from harness.runs import Run
from harness.spec import ClusterSpec

TARGET_MS = 2300.0
DOCKER_TARGET_MS = 3500.0  # --backend docker: the docker median
SPEC = ClusterSpec(masters=3, replicas=1)
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
class PlainNode(LocalNode):
    """A reference server: a :class:`LocalNode` (directory, config, PING probe, signals,
    teardown) whose process is started as this benchmark always started it: without the
    harness's log header, and with :func:`_die_with_parent`."""

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
                    preexec_fn=_die_with_parent(os.getpid()),
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
    """``redis-cli --cluster create``; its own session, registered with the run."""
    cmd = [cli, "--cluster", "create", *(n.addr for n in nodes)]
    cmd += ["--cluster-replicas", str(replicas), "--cluster-yes"]
    code, out = run_owned(cmd, run, CLI_TIMEOUT_S, preexec_fn=_die_with_parent(os.getpid()))
    if code != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {code}): {tail}")


# -- samples -------------------------------------------------------------------------
Kind = Literal["harness", "reference", "docker", "local"]


@dataclass
class NodeStart:
    """One ``Node.start`` call: when it began (ms after the clock started) and how long it
    took."""

    index: int
    at_ms: float
    ms: float

    @property
    def end_ms(self) -> float:
        return self.at_ms + self.ms


@dataclass
class Sample:
    kind: Kind
    rep: int
    ms: float
    phases: dict[str, float] = field(default_factory=dict)
    starts: list[NodeStart] = field(default_factory=list)  # profiled samples (--backend docker)
    masters_up_ms: float | None = None  # when the last master's start returned
    teardown_ms: float | None = None  # after the clock stopped; not part of ``ms``

    def line(self) -> str:
        detail = ", ".join(f"{k} {v:.0f} ms" for k, v in self.phases.items())
        text = f"rep {self.rep}  {self.kind:<9}  {self.ms:7.0f} ms" + (
            f"  ({detail})" if detail else ""
        )
        if self.starts:
            each = ", ".join(f"n{n.index} @{n.at_ms:.0f} {n.ms:.0f} ms" for n in self.starts)
            text += f"\n        starts: {each}"
        if self.masters_up_ms is not None:
            text += f"; masters up at {self.masters_up_ms:.0f} ms"
        if self.teardown_ms is not None:
            text += f"; teardown {self.teardown_ms:.0f} ms"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "rep": self.rep,
            "ms": round(self.ms, 1),
            "phases": {k: round(v, 1) for k, v in self.phases.items()},
        }
        if self.starts:
            out["starts"] = [
                {"node": f"n{n.index}", "at_ms": round(n.at_ms, 1), "ms": round(n.ms, 1)}
                for n in self.starts
            ]
        if self.masters_up_ms is not None:
            out["masters_up_ms"] = round(self.masters_up_ms, 1)
        if self.teardown_ms is not None:
            out["teardown_ms"] = round(self.teardown_ms, 1)
        return out


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


# -- --backend docker: the harness on docker against the harness on local ---------------
BackendName = Literal["docker", "local"]
PHASES = ("backend", "image", "network", "starts", "answering", "formation", "readiness")


class PhaseClock:
    """Times calls of harness functions during one bring-up.

    :meth:`wrap` replaces a function on its class or module by one that records when it
    ran, on the sample's clock; leaving the ``with`` block puts the originals back. The
    code timed is the unmodified ``Cluster.start`` path; the wrappers cost microseconds.
    """

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.calls: list[tuple[str, int | None, float, float]] = []  # phase, node, start, end
        self._originals: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, attr: str, phase: str) -> None:
        if attr not in vars(owner):
            raise HarnessError(f"cannot profile {owner!r}.{attr}: not defined there any more")
        original = vars(owner)[attr]
        call = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return call(*args, **kwargs)
            finally:
                node = args[0].index if args and isinstance(args[0], Node) else None
                self.calls.append((phase, node, start, time.monotonic()))

        self._originals.append((owner, attr, original))
        setattr(owner, attr, timed)

    def __enter__(self) -> PhaseClock:
        return self

    def __exit__(self, *exc: object) -> None:
        while self._originals:
            owner, attr, original = self._originals.pop()
            setattr(owner, attr, original)

    def phases(self, total_ms: float) -> dict[str, float]:
        """Wall time of each phase (first call's start to last call's end, so sequential
        calls add up and parallel ones would not), in :data:`PHASES` order, plus ``other``:
        the rest of ``total_ms`` (directories, config files, objects)."""
        spans: dict[str, list[float]] = {}
        for phase, _, start, end in self.calls:
            span = spans.setdefault(phase, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
        out = {p: (spans[p][1] - spans[p][0]) * 1000 for p in PHASES if p in spans}
        out["other"] = total_ms - sum(out.values())
        return out

    def starts(self) -> list[NodeStart]:
        return [
            NodeStart(node, (start - self.t0) * 1000, (end - start) * 1000)
            for phase, node, start, end in sorted(self.calls, key=lambda c: c[2])
            if phase == "starts" and node is not None
        ]


@contextlib.contextmanager
def profiled(backend: BackendName, t0: float) -> Iterator[PhaseClock]:
    """Phase timing of one ``Cluster.start`` on ``backend``."""
    with PhaseClock(t0) as clock:
        if backend == "docker":
            from harness.backends import docker as docker_backend

            clock.wrap(docker_backend.DockerBackend, "__init__", "backend")
            clock.wrap(docker_backend, "resolve_image", "image")
            clock.wrap(docker_backend.DockerBackend, "_make_network", "network")
            clock.wrap(docker_backend.DockerNode, "start", "starts")
            clock.wrap(docker_backend.DockerNode, "wait_answering", "answering")
        else:
            from harness.backends import local as local_backend

            clock.wrap(local_backend.LocalBackend, "__init__", "backend")
            clock.wrap(local_backend.LocalNode, "start", "starts")
            clock.wrap(local_backend.LocalNode, "wait_answering", "answering")
        clock.wrap(Cluster, "form", "formation")
        clock.wrap(Cluster, "wait_ready", "readiness")
        yield clock


def backend_sample(impl: Implementation, backend: BackendName, rep: int) -> Sample:
    """``Cluster.start(impl, SPEC, backend=...)`` from the call to READY, by phase."""
    t0 = time.monotonic()
    with profiled(backend, t0) as clock:
        cluster = Cluster.start(impl, SPEC, backend=backend)
        ms = (time.monotonic() - t0) * 1000
    try:
        check_shape(cluster)
    finally:
        t1 = time.monotonic()
        cluster.close()
        teardown_ms = (time.monotonic() - t1) * 1000
    starts = clock.starts()
    masters_up = max((n.end_ms for n in starts if n.index < SPEC.masters), default=None)
    return Sample(backend, rep, ms, clock.phases(ms), starts, masters_up, teardown_ms)


def warm_image(impl: Implementation) -> tuple[str, float]:
    """Build (or find unchanged) the image of ``impl.binary``, before any clock runs."""
    get_backend("docker")  # without the docker extras: the harness's own UsageError
    from harness import images

    t0 = time.monotonic()
    ref = images.image_for_binary(impl.binary)
    return ref, (time.monotonic() - t0) * 1000


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def profile(samples: list[Sample]) -> dict[str, float | None]:
    """Medians over the samples of one kind: each phase, one node start (over all nodes),
    the time the masters were up, and the teardown."""
    out: dict[str, float | None] = {
        p: _median([s.phases[p] for s in samples if p in s.phases]) for p in (*PHASES, "other")
    }
    out["one start"] = _median([n.ms for s in samples for n in s.starts])
    out["masters up"] = _median([s.masters_up_ms for s in samples if s.masters_up_ms is not None])
    out["teardown"] = _median([s.teardown_ms for s in samples if s.teardown_ms is not None])
    return out


def print_profile(docker: dict[str, float | None], local: dict[str, float | None]) -> None:
    def cell(v: float | None) -> str:
        return f"{v:7.0f}" if v is not None else "      -"

    notes = {
        "starts": "node starts (docker: containers)",
        "one start": "one node start, median over all nodes",
        "masters up": "last master's start returned; each master then holds cluster_state:fail "
        "for 2000 ms (CLUSTER_WRITABLE_DELAY)",
        "teardown": "Cluster.close(), after the clock stopped",
    }
    print("where the time goes (medians, ms):")
    print(f"  {'phase':<11}{'docker':>7}  {'local':>7}")
    for key in docker:
        note = f"  {notes[key]}" if key in notes else ""
        print(f"  {key:<11}{cell(docker[key])}  {cell(local[key])}{note}")


def docker_main(args: argparse.Namespace) -> int:
    """``--backend docker``: the harness on docker against the harness on local."""
    try:
        impl = resolve(args.impl, args.impl_binary)
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    stop_on_sigterm()
    print(f"bring-up to READY of {SPEC.masters}x{SPEC.replicas}, {impl.describe()}")
    print(f"docker backend against local backend; {args.reps} reps, alternating order")
    try:
        ref, warm_ms = warm_image(impl)
    except KeyboardInterrupt:
        print("bringup: interrupted", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    print(f"image warm-up (not timed below): {ref} in {warm_ms:.0f} ms")

    run = Run.current()  # created up front: its watchdog start is not part of any sample
    kinds: tuple[BackendName, BackendName] = ("docker", "local")
    samples = take_samples(kinds, args.reps, lambda b, rep: backend_sample(impl, b, rep), run)
    if isinstance(samples, int):
        return samples
    medians = Medians.of(samples, kinds, DOCKER_TARGET_MS)
    medians.report()
    prof = {b: profile(samples[b]) for b in kinds}
    print_profile(prof["docker"], prof["local"])

    if args.json:
        result = {
            "backend": "docker",
            **result_json(
                impl,
                {"image": {"ref": ref, "warmup_ms": round(warm_ms, 1)}},
                args.reps,
                samples,
                medians,
            ),
            "profile_ms": {
                b: {k: None if v is None else round(v, 1) for k, v in prof[b].items()}
                for b in kinds
            },
        }
        if not write_json("bringup", args.json, result):
            return 1
    return 0


# -- both modes: alternating samples, medians, results ----------------------------------
K = TypeVar("K", bound=str)


def take_samples(
    kinds: tuple[K, K], reps: int, take: Callable[[K, int], Sample], run: Run
) -> dict[K, list[Sample]] | int:
    """``reps`` samples of each kind, in alternating order (``kinds`` in the order given on
    odd reps), each printed as it comes; or the exit status if interrupted (130) or a
    bring-up failed (1). ``run`` is closed at the end either way."""
    samples: dict[K, list[Sample]] = {k: [] for k in kinds}
    try:
        for rep in range(1, reps + 1):
            for kind in kinds if rep % 2 else kinds[::-1]:
                s = take(kind, rep)
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
    return samples


@dataclass
class Medians:
    """The median bring-up of each of two kinds; the first kind's against a target."""

    kinds: tuple[str, str]
    ms: tuple[float, float]
    target_ms: float

    @classmethod
    def of(cls, samples: dict[K, list[Sample]], kinds: tuple[K, K], target_ms: float) -> Medians:
        first, second = (statistics.median(s.ms for s in samples[k]) for k in kinds)
        return cls(kinds, (first, second), target_ms)

    @property
    def ratio(self) -> float:
        return self.ms[0] / self.ms[1]

    @property
    def met(self) -> bool:
        return self.ms[0] <= self.target_ms

    def report(self) -> None:
        for kind, ms in zip(self.kinds, self.ms, strict=True):
            print(f"median {kind:<11}{ms:7.0f} ms")
        print(f"ratio {self.kinds[0]}/{self.kinds[1]} {self.ratio:.2f}")
        print(
            f"target {self.kinds[0]} median <= {self.target_ms:.0f} ms: "
            f"{'met' if self.met else 'NOT met'} ({self.ms[0]:.0f} ms)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "median_ms": {k: round(ms, 1) for k, ms in zip(self.kinds, self.ms, strict=True)},
            "ratio": round(self.ratio, 3),
            "target_ms": self.target_ms,
            "target_met": self.met,
        }


def result_json(
    impl: Implementation,
    extra: dict[str, Any],
    reps: int,
    samples: dict[K, list[Sample]],
    medians: Medians,
) -> dict[str, Any]:
    """The results both modes write with ``--json``; ``extra`` comes after ``impl``."""
    return {
        "impl": {
            "name": impl.name,
            "flavor": impl.flavor,
            "version": impl.version_str,
            "binary": impl.binary,
        },
        **extra,
        "spec": {
            "masters": SPEC.masters,
            "replicas": SPEC.replicas,
            "node_timeout_ms": SPEC.node_timeout_ms,
        },
        "reps": reps,
        "samples": [s.to_json() for k in samples for s in samples[k]],
        **medians.to_json(),
    }


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--backend",
        choices=("local", "docker"),
        default="local",
        help="local (default): harness against redis-cli --cluster create; "
        "docker: harness on docker against harness on local",
    )
    p.add_argument("--reps", type=int, default=5, help="repetitions of each (default 5)")
    add_common_args(p)
    p.add_argument(
        "--cli",
        metavar="PATH",
        default="redis-cli",
        help="redis-cli to use (default: redis-cli on PATH; --backend local only)",
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend == "docker":
        return docker_main(args)
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

    stop_on_sigterm()
    run = Run.current()  # created up front: its watchdog start is not part of any sample
    print(f"bring-up to READY of {SPEC.masters}x{SPEC.replicas}, {impl.describe()}")
    print(f"reference: {cli_version} --cluster create; {args.reps} reps, alternating order")
    kinds: tuple[Kind, Kind] = ("harness", "reference")

    def take(kind: Kind, rep: int) -> Sample:
        if kind == "harness":
            return harness_sample(impl, rep)
        return reference_sample(impl, cli, run, rep)

    samples = take_samples(kinds, args.reps, take, run)
    if isinstance(samples, int):
        return samples
    medians = Medians.of(samples, kinds, TARGET_MS)
    medians.report()

    if args.json:
        cli_info = {"cli": {"path": cli, "version": cli_version}}
        result = result_json(impl, cli_info, args.reps, samples, medians)
        if not write_json("bringup", args.json, result):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
