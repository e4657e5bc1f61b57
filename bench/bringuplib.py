"""What both modes of bench/bringup.py share: samples, their alternating order, medians
and the JSON they write."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.spec import ClusterSpec

Kind = Literal["harness", "reference", "docker", "local"]

#: --sizes: a node count alone means this shape (masters x replicas per master)
SHAPE_OF_SIZE = {3: (3, 0), 6: (3, 1), 10: (5, 1), 30: (10, 2), 100: (50, 1)}


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"3,10,30,100"`` or ``"3x0,10x2"`` (or a mix) -> shapes; ValueError names a bad
    item."""
    shapes = []
    for item in (i.strip().lower() for i in text.split(",")):
        if item.isdigit():
            if int(item) not in SHAPE_OF_SIZE:
                sizes = ", ".join(f"{n} ({m}x{r})" for n, (m, r) in SHAPE_OF_SIZE.items())
                raise ValueError(f"size {item}: use one of {sizes}, or MASTERSxREPLICAS")
            shapes.append(SHAPE_OF_SIZE[int(item)])
            continue
        masters, sep, replicas = item.partition("x")
        if not (sep and masters.isdigit() and replicas.isdigit() and int(masters) >= 1):
            raise ValueError(f"bad size {item!r}: a node count or MASTERSxREPLICAS, e.g. 10x2")
        shapes.append((int(masters), int(replicas)))
    return shapes


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
    """After the clock stopped: the cluster really has the spec's masters, each with the
    spec's number of replicas."""
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


K = TypeVar("K", bound=str)


def take_samples(
    kinds: tuple[K, K], reps: int, take: Callable[[K, int], Sample]
) -> dict[K, list[Sample]] | int:
    """``reps`` samples of each kind, in alternating order (``kinds`` in the order given on
    odd reps), each printed as it comes; or the exit status if interrupted (130) or a
    bring-up failed (1)."""
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
    return samples


@dataclass
class Medians:
    """The median bring-up of each of two kinds; the first kind's against a target if
    there is one."""

    kinds: tuple[str, str]
    ms: tuple[float, float]
    target_ms: float | None = None

    @classmethod
    def of(
        cls, samples: dict[K, list[Sample]], kinds: tuple[K, K], target_ms: float | None = None
    ) -> Medians:
        first, second = (statistics.median(s.ms for s in samples[k]) for k in kinds)
        return cls(kinds, (first, second), target_ms)

    @property
    def ratio(self) -> float:
        return self.ms[0] / self.ms[1]

    @property
    def met(self) -> bool | None:
        return None if self.target_ms is None else self.ms[0] <= self.target_ms

    def report(self) -> None:
        for kind, ms in zip(self.kinds, self.ms, strict=True):
            print(f"median {kind:<11}{ms:7.0f} ms")
        print(f"ratio {self.kinds[0]}/{self.kinds[1]} {self.ratio:.2f}")
        if self.target_ms is not None:
            print(
                f"target {self.kinds[0]} median <= {self.target_ms:.0f} ms: "
                f"{'met' if self.met else 'NOT met'} ({self.ms[0]:.0f} ms)"
            )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_ms": {k: round(ms, 1) for k, ms in zip(self.kinds, self.ms, strict=True)},
            "ratio": round(self.ratio, 3),
        }
        if self.target_ms is not None:
            out |= {"target_ms": self.target_ms, "target_met": self.met}
        return out


def impl_json(impl: Implementation) -> dict[str, Any]:
    return {
        "name": impl.name,
        "flavor": impl.flavor,
        "version": impl.version_str,
        "binary": impl.binary,
    }


def spec_json(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "masters": spec.masters,
        "replicas": spec.replicas,
        "nodes": spec.size,
        "node_timeout_ms": spec.node_timeout_ms,
    }
