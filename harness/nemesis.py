"""Nemesis schedules: seeded sequences of faults with intervals.

A schedule is data (a list of :class:`Step`), generated from a seed before anything runs:
the same seed gives the same schedule, which is printed and stored with the report so a
failing run can be replayed. :func:`execute` applies it to a cluster: inject, hold for the
step's duration, heal, then wait until the cluster is ready again before the next step;
:class:`~harness.scenario.Scenario` runs it under a recorded workload.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from harness.backends.base import Node
    from harness.cluster import Cluster

FAULTS = ("kill", "pause", "restart", "partition", "latency")


@dataclass(frozen=True)
class Step:
    """One fault: ``target`` is a node index, chosen among the masters of the moment when
    ``target`` is -1 (so repeated kills follow the promoted replicas)."""

    fault: str
    target: int
    wait_before_s: float  # quiet time before injecting
    hold_s: float  # how long the fault lasts
    detail: str = ""

    def describe(self) -> str:
        who = "a current master" if self.target < 0 else f"n{self.target}"
        extra = f" ({self.detail})" if self.detail else ""
        return f"after {self.wait_before_s:.2f}s: {self.fault} {who} for {self.hold_s:.2f}s{extra}"


def schedule(
    seed: int,
    steps: int,
    faults: Sequence[str] = ("kill",),
    interval_s: tuple[float, float] = (0.5, 1.5),
    hold_s: tuple[float, float] = (0.5, 1.5),
    nodes: int | None = None,
) -> list[Step]:
    """A reproducible fault schedule. With ``nodes`` given, targets are fixed node indexes;
    otherwise each step targets whichever node is a master when it runs."""
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise UsageError(f"unknown nemesis fault {unknown[0]!r}; choose from {', '.join(FAULTS)}")
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        fault = rng.choice(list(faults))
        target = rng.randrange(nodes) if nodes else -1
        detail = f"{rng.choice([100, 200, 400])} ms" if fault == "latency" else ""
        out.append(
            Step(
                fault,
                target,
                round(rng.uniform(*interval_s), 3),
                round(rng.uniform(*hold_s), 3),
                detail,
            )
        )
    return out


def save(steps: Sequence[Step], path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"seed": seed, "steps": [asdict(s) for s in steps]}, indent=2) + "\n"
    )
    return path


Hold = Callable[["Step", "Node"], None]


def execute(
    cluster: Cluster,
    steps: Sequence[Step],
    rng: random.Random,
    ready_timeout: float | None = None,
    hold: Hold | None = None,
) -> None:
    """Apply ``steps`` in order: wait, inject, hold, heal, then wait until the cluster is
    ready again. A step aimed at "a current master" picks one that has a replica when
    there is any (so a kill leads to a failover). Holding is waiting for the step's
    duration by design (the schedule says how long); ``hold(step, node)``, when given,
    runs after that while the fault is still in place (e.g. to wait for the failover it
    causes). Recovery is polled (:meth:`Cluster.wait_ready`), by default within the
    cluster's own :meth:`~harness.cluster.Cluster.recovery_s`."""
    pause = threading.Event()  # never set: Event.wait is an interruptible timed wait

    def held(step: Step, node: Node) -> None:
        pause.wait(step.hold_s)
        if hold is not None:
            hold(step, node)

    for step in steps:
        pause.wait(step.wait_before_s)
        node = cluster.nodes[step.target] if step.target >= 0 else _a_master(cluster, rng)
        cluster.record("nemesis", node.addr, step.describe())
        faults = cluster.faults
        if step.fault == "kill":
            faults.kill(node)
            held(step, node)
            faults.start(node)
        elif step.fault == "pause":
            with faults.paused(node):
                held(step, node)
        elif step.fault == "restart":
            faults.crash_restart(node)
            held(step, node)
        elif step.fault == "partition":
            with faults.partitioned("isolate", node=node):
                held(step, node)
        elif step.fault == "latency":
            with faults.latency(node, int(step.detail.split()[0])):
                held(step, node)
        cluster.wait_ready(ready_timeout)


def _a_master(cluster: Cluster, rng: random.Random) -> Node:
    masters = cluster.masters()
    covered = [m for m in masters if cluster.replicas_of(m)]
    if not masters:
        raise HarnessError(f"no master to aim at:\n{cluster.snapshot().describe()}")
    return rng.choice(covered or masters)
