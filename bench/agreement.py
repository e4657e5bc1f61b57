"""Agreement-check benchmark: how long one readiness probe and one topology check take
as the cluster grows.

For each shape of ``--shapes`` (default ``3x0,10x2,50x1``: 3, 30 and 100 nodes) one
ready cluster is started, then ``--reps`` times each, in an order rotated every rep:

* **reference**: ``CLUSTER NODES`` asked of every node in turn, one fresh connection
  each, reply read and nothing parsed: the least any agreement check must fetch, done the
  plain way. The figures below are ratios to it, so they hold on a faster or slower
  machine;
* **snapshot**: :meth:`Cluster.snapshot` of the live nodes (``CLUSTER NODES``, ``CLUSTER
  INFO`` and, where supported, ``CLUSTER SHARDS`` of each node, parsed);
* **healthy**: :func:`harness.checkers.healthy` on that snapshot (pure: the slot-map
  checks and the agreement between the nodes, no I/O);
* **readiness**: one call of the probe :meth:`Cluster.wait_ready` polls (snapshot,
  checks, replica sync and ``WAIT`` on each master) on the ready cluster: what one poll
  costs once the cluster is up, and the floor of any wait for it.

Nothing is asserted: the medians and ratios are printed (and written with ``--json``).

Usage: ``.venv/bin/python bench/agreement.py [--shapes 3x0,10x2,50x1] [--reps N]
[--impl NAME | --impl-binary PATH] [--json PATH]``. Exit status: 0 done, 1 a cluster did
not come up or a check failed on a ready cluster, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchlib import add_common_args, parse_shapes, stop_on_sigterm, write_json

from harness.checkers import healthy
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import resolve
from harness.runs import Run
from harness.spec import ClusterSpec

KINDS = ("reference", "snapshot", "healthy", "readiness")


def _reference(cluster: Cluster) -> None:
    for n in cluster.live_nodes():
        with n.client(timeout=5.0) as c:
            c.execute_command("CLUSTER", "NODES")


def measure(cluster: Cluster, reps: int) -> dict[str, list[float]]:
    """``reps`` timings (ms) of each kind on one ready cluster, order rotated per rep."""
    live = cluster.live_nodes()
    snap = cluster.snapshot(live)
    verdict = healthy(snap)
    if not verdict.ok:
        raise HarnessError(f"a ready cluster failed the checks: {verdict}")

    def readiness() -> None:
        ok, why = cluster._readiness(live, None)
        if not ok:
            raise HarnessError(f"a ready cluster failed the readiness probe: {why}")

    runs: dict[str, Callable[[], object]] = {
        "reference": lambda: _reference(cluster),
        "snapshot": lambda: cluster.snapshot(live),
        "healthy": lambda: healthy(snap),
        "readiness": readiness,
    }
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    for rep in range(reps):
        for kind in KINDS[rep % len(KINDS) :] + KINDS[: rep % len(KINDS)]:
            t0 = time.perf_counter()
            runs[kind]()
            out[kind].append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--shapes",
        default="3x0,10x2,50x1",
        help="clusters to measure, MASTERSxREPLICAS, comma-separated (default 3x0,10x2,50x1)",
    )
    p.add_argument("--reps", type=int, default=5, help="repetitions of each (default 5)")
    add_common_args(p)
    args = p.parse_args(argv)
    try:
        shapes = parse_shapes(args.shapes)
        impl = resolve(args.impl, args.impl_binary)
    except (ValueError, HarnessError) as exc:
        print(f"agreement: {exc}", file=sys.stderr)
        return 2
    if args.reps < 1:
        p.error("--reps must be at least 1")
    stop_on_sigterm()
    run = Run.current()
    print(f"one agreement check / readiness probe on a ready cluster, {impl.describe()}")
    print(f"medians of {args.reps} reps (ms); ratios to the reference of the same shape")
    print(f"  {'shape':<7}{'nodes':>6}" + "".join(f"{k:>11}" for k in KINDS) + "   ratios")
    results: list[dict[str, Any]] = []
    try:
        for masters, replicas in shapes:
            spec = ClusterSpec(masters=masters, replicas=replicas)
            with Cluster.start(impl, spec) as cluster:
                times = measure(cluster, args.reps)
            med = {k: statistics.median(v) for k, v in times.items()}
            ratios = {k: med[k] / med["reference"] for k in KINDS[1:]}
            print(
                f"  {masters}x{replicas:<5}{spec.size:>6}"
                + "".join(f"{med[k]:11.1f}" for k in KINDS)
                + "   "
                + " ".join(f"{k} {r:.2f}x" for k, r in ratios.items()),
                flush=True,
            )
            results.append(
                {
                    "shape": f"{masters}x{replicas}",
                    "nodes": spec.size,
                    "samples_ms": {k: [round(x, 2) for x in v] for k, v in times.items()},
                    "median_ms": {k: round(v, 2) for k, v in med.items()},
                    "ratio_to_reference": {k: round(v, 3) for k, v in ratios.items()},
                }
            )
    except KeyboardInterrupt:
        print("agreement: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"agreement: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()
    if args.json:
        impl_info = {"name": impl.name, "version": impl.version_str, "binary": impl.binary}
        result = {"impl": impl_info, "reps": args.reps, "shapes": results}
        if not write_json("agreement", args.json, result):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
