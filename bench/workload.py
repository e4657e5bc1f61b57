"""Workload throughput benchmark: recorded ops/s of the harness's set workload against
``redis-benchmark`` on the same cluster.

One 3 masters x 1 replica cluster is started for the whole run; on it, ``--reps`` times
each, in an order rotated every rep:

* **workload:<engine>**: the harness's recorded set workload, ``Workload(cluster,
  WorkloadSpec(kind="set", clients=C, rate=None, max_ops=N, seed=rep, engine=E))``, run
  until all ``N`` operations are recorded, for each engine of ``--engine`` (default both:
  ``redis-py``, redis-py's asyncio RedisCluster, and ``raw``, harness.rawclient). Its clock
  starts just before ``Workload.running()`` (thread, event loop, client and slot map
  included) and stops at the completion of the last operation; ops/s = operations that
  completed ``ok`` / that time.
* **reference**: ``redis-benchmark --cluster -h H -p P -t sadd -n N -c C -P 1 -q
  --threads 1`` against a master of the same cluster; ops/s is the rate it prints.

``--threads 1`` (``--reference-threads``) is deliberate. Without it, ``--cluster`` runs
one client thread per master, and a thread whose clients ran out of requests only stops
at its next 250 ms ``showThroughput`` tick, so the elapsed time redis-benchmark divides by
is rounded up to a multiple of 250 ms: 20000 requests report 79k/s (20000 / 0.25 s)
whatever the real rate. One thread stops at the last reply, so its rate is exact at any
``-n``; it is also the like-for-like client: the workload runs on one thread too. Pass
``--reference-threads 0`` for redis-benchmark's own default.

Each sample also counts the SADD calls the masters executed (``INFO commandstats``), so a
sample that did not do its work is an error rather than a fast number. Medians, the ratio
workload/reference per engine and the target (ratio >= 0.5) are printed, and written as JSON with
``--json``. Everything started (servers, redis-benchmark) is stopped at the end, on an
error, Ctrl-C or SIGTERM.

Usage: ``.venv/bin/python bench/workload.py [--reps N] [--clients C] [--ops N]
[--reference-ops N] [--reference-threads N] [--engine redis-py|raw|both]
[--impl NAME | --impl-binary PATH]
[--redis-benchmark PATH] [--json PATH]``. Exit status: 0 done (target met or not), 1 a
sample failed, 2 bad usage or redis-benchmark missing, 130 interrupted.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

from benchlib import add_common_args, run_owned, stop_on_sigterm, write_json

from harness.backends.base import Node
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import Implementation, resolve
from harness.loops import loop_factory
from harness.runs import Run
from harness.spec import ClusterSpec
from harness.topology import parse_info
from harness.wait import wait_for
from harness.workload import ENGINES, Engine, Workload, WorkloadSpec

TARGET_RATIO = 0.5  # workload median ops/s >= 0.5 x redis-benchmark median
SPEC = ClusterSpec(masters=3, replicas=1)
MIN_RATE = 200.0  # ops/s below which a sample is given up as hung
MIN_TIMEOUT_S = 60.0
RESULT_RE = re.compile(r"SADD: ([0-9.]+) requests per second(?:, p50=([0-9.]+) msec)?")

Kind = str  # "reference" or "workload:<engine>"


@dataclass
class Sample:
    kind: Kind
    rep: int
    ops: int  # completed (workload: outcome ok; reference: requests)
    elapsed_s: float  # the clock the rate is computed from
    p50_ms: float | None
    server_calls: int  # SADD calls the masters executed during the sample
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed_s

    def line(self) -> str:
        p50 = f"p50 {self.p50_ms:.3f} ms" if self.p50_ms is not None else "p50 -"
        extra = ", ".join(f"{k} {v}" for k, v in self.detail.items())
        return (
            f"rep {self.rep}  {self.kind:<9}  {self.rate:9.0f} ops/s  "
            f"({self.ops} ops in {self.elapsed_s * 1000:.0f} ms, {p50}, "
            f"{self.server_calls} SADD calls on the masters{', ' + extra if extra else ''})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "rep": self.rep,
            "ops": self.ops,
            "elapsed_ms": round(self.elapsed_s * 1000, 1),
            "ops_per_s": round(self.rate, 1),
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 3),
            "server_calls": self.server_calls,
            **self.detail,
        }


def sadd_calls(masters: list[Node]) -> int:
    """SADD calls executed so far, summed over ``masters`` (``INFO commandstats``)."""
    total = 0
    for m in masters:
        stats = parse_info(str(m.call("INFO", "commandstats")))
        fields = dict(
            kv.split("=", 1) for kv in stats.get("cmdstat_sadd", "").split(",") if "=" in kv
        )
        total += int(fields.get("calls", 0))
    return total


def _timeout(ops: int) -> float:
    return max(MIN_TIMEOUT_S, ops / MIN_RATE)


# -- workload ------------------------------------------------------------------------
def workload_sample(
    cluster: Cluster, masters: list[Node], clients: int, ops: int, rep: int, engine: Engine
) -> Sample:
    """The harness's set workload, ``ops`` operations at full speed."""
    spec = WorkloadSpec(
        kind="set", clients=clients, rate=None, max_ops=ops, seed=rep, engine=engine
    )
    wl = Workload(cluster, spec)  # fresh keys each rep (the seed is in the key names)
    before = sadd_calls(masters)
    t0 = time.monotonic_ns()
    with wl.running():
        wait_for(
            lambda: (len(wl.history.ops) >= ops, len(wl.history.ops)),
            _timeout(ops),
            f"{ops} workload ops",
        )
    history = list(wl.history.ops)
    calls = sadd_calls(masters) - before
    ok = [op for op in history if op.outcome == "ok"]
    if not ok:
        raise HarnessError(f"workload rep {rep}: no operation succeeded ({len(history)} ops)")
    last = max(op.complete_ns for op in history)
    first = min(op.invoke_ns for op in history)
    if calls < len(ok):
        raise HarnessError(
            f"workload rep {rep}: {len(ok)} adds acknowledged but the masters executed "
            f"only {calls} SADD calls"
        )
    latencies = sorted(op.complete_ns - op.invoke_ns for op in ok)
    detail: dict[str, Any] = {"startup_ms": round((first - t0) / 1e6, 1)}
    failed = sum(op.outcome == "fail" for op in history)
    unknown = sum(op.outcome == "info" for op in history)
    if failed or unknown:
        detail.update(failed=failed, unknown=unknown)
    return Sample(
        f"workload:{engine}",
        rep,
        len(ok),
        (last - t0) / 1e9,
        statistics.median(latencies) / 1e6,
        calls,
        detail,
    )


# -- reference -------------------------------------------------------------------------
def reference_command(
    binary: str, node: Node, clients: int, requests: int, threads: int
) -> list[str]:
    cmd = [binary, "--cluster", "-h", node.public_host, "-p", str(node.public_port)]
    cmd += ["-t", "sadd", "-n", str(requests), "-c", str(clients), "-P", "1", "-q"]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def reference_sample(
    cmd: list[str], run: Run, masters: list[Node], requests: int, rep: int
) -> Sample:
    """One ``redis-benchmark`` run: its own session, registered with the run, killed on
    any way out."""
    before = sadd_calls(masters)
    t0 = time.monotonic()
    # cwd in the run directory: the run's sweep finds it even before it is registered
    code, raw = run_owned(cmd, run, _timeout(requests), cwd=run.dir)
    wall = time.monotonic() - t0
    found = RESULT_RE.findall(raw)
    if code != 0 or not found:
        tail = " | ".join(raw.replace("\r", "\n").strip().splitlines()[-3:])
        raise HarnessError(f"`{' '.join(cmd)}` failed (exit {code}): {tail}")
    rps, p50 = found[-1]
    calls = sadd_calls(masters) - before
    if calls < requests:
        raise HarnessError(
            f"reference rep {rep}: redis-benchmark reported {requests} requests but the "
            f"masters executed only {calls} SADD calls"
        )
    return Sample(
        "reference",
        rep,
        requests,
        requests / float(rps),
        float(p50) if p50 else None,
        calls,
        {"wall_ms": round(wall * 1000)},
    )


def benchmark_tool(path: str) -> tuple[str, str]:
    """``(absolute path, version)`` of a redis-benchmark with ``--cluster``."""
    binary = shutil.which(path)
    if binary is None:
        raise HarnessError(
            f"{path} not found; install redis-benchmark (redis-tools) or pass --redis-benchmark PATH"
        )

    def run(*args: str) -> str:
        done = subprocess.run(
            [binary, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        return done.stdout + done.stderr

    if "--cluster" not in run("--help"):
        raise HarnessError(f"{binary} has no --cluster mode (redis-benchmark 6.0 or later has)")
    return binary, run("--version").strip()


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=3, help="repetitions of each (default 3)")
    p.add_argument("--clients", type=int, default=8, help="clients / connections (default 8)")
    p.add_argument("--ops", type=int, default=20_000, help="workload operations (default 20000)")
    p.add_argument(
        "--reference-ops",
        type=int,
        metavar="N",
        help="redis-benchmark requests (-n); default: the same as --ops",
    )
    p.add_argument(
        "--reference-threads",
        type=int,
        default=1,
        metavar="N",
        help="redis-benchmark --threads (default 1; 0 = its default, one per master, "
        "whose clock is rounded up to 250 ms)",
    )
    add_common_args(p)
    p.add_argument(
        "--redis-benchmark",
        metavar="PATH",
        default="redis-benchmark",
        help="redis-benchmark to use (default: redis-benchmark on PATH)",
    )
    p.add_argument(
        "--engine",
        choices=(*ENGINES, "both"),
        default="both",
        help="workload client engine(s) to measure (default both)",
    )
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    if not 1 <= args.clients <= 256:
        p.error("--clients must be 1..256")
    if args.ops < 1:
        p.error("--ops must be at least 1")
    if args.reference_ops is None:
        args.reference_ops = args.ops
    if args.reference_ops < 1:
        p.error("--reference-ops must be at least 1")
    if args.reference_threads < 0:
        p.error("--reference-threads must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        tool, tool_version = benchmark_tool(args.redis_benchmark)
        impl: Implementation = resolve(args.impl, args.impl_binary)
    except HarnessError as exc:
        print(f"workload: {exc}", file=sys.stderr)
        return 2

    stop_on_sigterm()
    run = Run.current()  # created up front: its watchdog start is not part of any sample
    print(f"set workload ops/s on {SPEC.masters}x{SPEC.replicas}, {impl.describe()}")
    engines: list[Engine] = list(ENGINES) if args.engine == "both" else [args.engine]
    kinds: list[Kind] = [f"workload:{e}" for e in engines] + ["reference"]
    samples: dict[Kind, list[Sample]] = {k: [] for k in kinds}
    try:
        with Cluster.start(impl, SPEC) as cluster:
            masters = cluster.masters()
            cmd = reference_command(
                tool,
                cluster.initial_masters[0],
                args.clients,
                args.reference_ops,
                args.reference_threads,
            )
            print(
                f"workload ({', '.join(engines)}): {args.clients} clients, {args.ops} ops, "
                f"rate unlimited; reference: {tool_version}: {' '.join(cmd[1:])}"
            )
            loop = "uvloop" if loop_factory("auto") else "asyncio"
            print(f"{args.reps} reps, order rotated each rep; workload event loop {loop}")
            for rep in range(1, args.reps + 1):
                shift = (rep - 1) % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    s = (
                        reference_sample(cmd, run, masters, args.reference_ops, rep)
                        if kind == "reference"
                        else workload_sample(
                            cluster,
                            masters,
                            args.clients,
                            args.ops,
                            rep,
                            cast(Engine, kind.split(":", 1)[1]),
                        )
                    )
                    samples[kind].append(s)
                    print(s.line(), flush=True)
    except KeyboardInterrupt:
        print("workload: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"workload: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()

    medians = {k: statistics.median(s.rate for s in v) for k, v in samples.items()}
    med_r = medians["reference"]
    ratios = {k.split(":", 1)[1]: m / med_r for k, m in medians.items() if k != "reference"}
    for kind, m in medians.items():
        print(f"median {kind:<18} {m:9.0f} ops/s")
    for engine, ratio in ratios.items():
        print(
            f"engine {engine}: ratio workload/reference {ratio:.3f}; target >= "
            f"{TARGET_RATIO:.2f} {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        )

    if args.json:
        result: dict[str, Any] = {
            "impl": {
                "name": impl.name,
                "flavor": impl.flavor,
                "version": impl.version_str,
                "binary": impl.binary,
            },
            "spec": {"masters": SPEC.masters, "replicas": SPEC.replicas},
            "redis_benchmark": {"path": tool, "version": tool_version, "command": cmd},
            "clients": args.clients,
            "ops": args.ops,
            "reference_ops": args.reference_ops,
            "reference_threads": args.reference_threads,
            "reps": args.reps,
            "engines": engines,
            "samples": [s.to_json() for kind in kinds for s in samples[kind]],
            "median_ops_per_s": {k: round(m, 1) for k, m in medians.items()},
            "ratio": {e: round(r, 3) for e, r in ratios.items()},
            "target_ratio": TARGET_RATIO,
            "target_met": {e: r >= TARGET_RATIO for e, r in ratios.items()},
        }
        if not write_json("workload", args.json, result):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
