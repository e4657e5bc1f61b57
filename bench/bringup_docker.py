"""``bench/bringup.py --backend docker``: the harness on docker against the harness on
local, per shape, in alternating order, each bring-up profiled by phase (see
bench/bringup.py for what is measured)."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, Literal

from benchlib import stop_on_sigterm, write_json
from bringuplib import (
    Medians,
    NodeStart,
    Sample,
    check_shape,
    impl_json,
    spec_json,
    take_samples,
)

from harness.backends import get_backend
from harness.backends.base import Node
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.formation import Formation
from harness.impl import Implementation, resolve
from harness.runs import Run
from harness.spec import ClusterSpec

DOCKER_TARGET_MS = 3500.0  # the docker median of a 3x1 cluster
TARGET_SHAPE = (3, 1)

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
        clock.wrap(Formation, "form", "formation")  # Cluster's mixin defines them
        clock.wrap(Formation, "wait_ready", "readiness")
        yield clock


def backend_sample(
    impl: Implementation, spec: ClusterSpec, backend: BackendName, rep: int
) -> Sample:
    """``Cluster.start(impl, spec, backend=...)`` from the call to READY, by phase."""
    t0 = time.monotonic()
    with profiled(backend, t0) as clock:
        cluster = Cluster.start(impl, spec, backend=backend)
        ms = (time.monotonic() - t0) * 1000
    try:
        check_shape(cluster)
    finally:
        t1 = time.monotonic()
        cluster.close()
        teardown_ms = (time.monotonic() - t1) * 1000
    starts = clock.starts()
    masters_up = max((n.end_ms for n in starts if n.index < spec.masters), default=None)
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


def docker_main(args: argparse.Namespace, shapes: list[tuple[int, int]]) -> int:
    """``--backend docker``: the harness on docker against the harness on local."""
    try:
        impl = resolve(args.impl, args.impl_binary)
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    stop_on_sigterm()
    print(f"bring-up to READY, {impl.describe()}")
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
    results: list[dict[str, Any]] = []
    try:
        for masters, replicas in shapes:
            spec = ClusterSpec(masters=masters, replicas=replicas)
            print(f"-- {masters}x{replicas} ({spec.size} nodes)")
            samples = take_samples(kinds, args.reps, partial(backend_sample, impl, spec))
            if isinstance(samples, int):
                return samples
            target = DOCKER_TARGET_MS if (masters, replicas) == TARGET_SHAPE else None
            medians = Medians.of(samples, kinds, target)
            medians.report()
            prof = {b: profile(samples[b]) for b in kinds}
            print_profile(prof["docker"], prof["local"])
            results.append(
                {
                    "spec": spec_json(spec),
                    "samples": [s.to_json() for k in kinds for s in samples[k]],
                    **medians.to_json(),
                    "profile_ms": {
                        b: {k: None if v is None else round(v, 1) for k, v in prof[b].items()}
                        for b in kinds
                    },
                }
            )
    finally:
        run.close()
    if args.json:
        result = {
            "backend": "docker",
            "impl": impl_json(impl),
            "image": {"ref": ref, "warmup_ms": round(warm_ms, 1)},
            "reps": args.reps,
            "shapes": results,
        }
        if not write_json("bringup", args.json, result):
            return 1
    return 0
