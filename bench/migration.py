"""Migration benchmark: keys/s moved under load, the harness's ``migrate_slots`` against
the server's own ``redis-cli --cluster reshard``, on the same shape, in the same run.

For each shape of ``--shape`` (default 3x0, masters x replicas per master), ``--reps``
times each, in alternating order, on a fresh cluster each time (``Cluster.start``):

1. a new master is added (``harness.ops.add_master``, with R replicas of its own by
   ``add_replica`` so the shape holds), and K keys (``--keys``, values of ``--value-bytes``)
   are written, spread round-robin over the first S slots (``--slots``) of the master
   that owns slot 0;
2. a background load starts: one thread, a redis-py cluster client, SET and GET in turn
   on random keys of those K, paced at ``--load-rate`` ops/s (0: unpaced), bounded by
   ``--load-max-ops`` and ``--load-max-s``;
3. the clock runs while those S slots move to the new master:

   * **harness**: ``migrate_slots(cluster, source, target, slots, batch=B, wait=False)``
     (``--batch``, default the library's 100 keys per ``MIGRATE``);
   * **reference**: ``<cli> --cluster reshard <source> --cluster-from <source id>
     --cluster-to <target id> --cluster-slots S --cluster-yes`` (the CLI that comes with
     the server, found by ``harness.clitool``; it takes the source's lowest S slots, the
     same ones, which is checked), ``--cluster-pipeline P`` only with ``--pipeline`` (the
     tool's default is 10 keys per ``MIGRATE``; ``--pipeline 100`` matches the harness);
     its time includes its process start and its own check of the cluster first;

   then both wait, still timed, for the same bar: ``harness.ops``'s ``wait_settled``
   (every live node names the new owner of each slot, none has one open, no key is
   hidden elsewhere), which ``migrate_slots`` does itself with its default ``wait=True``;
4. untimed: the load stops; every key is read back through a fresh cluster client (all K
   must be there), the keys moved are counted on the new master, the tool's ``--cluster
   check`` must find the cluster whole. The harness's own after-operation second opinion
   (``cluster.cli_check``) is off during the clock and run here instead, for both.

Reported per sample and as medians per shape: keys/s to the settled bar (the headline,
and its ratio harness/reference), keys/s of the mover alone (up to ``migrate_slots``
returning / the CLI exiting), the load's ops/s during the move, its errors and missing
reads. The load thread shares the benchmark's process (and GIL) with ``migrate_slots``
but not with the CLI. No target is asserted.

Usage: ``.venv/bin/python bench/migration.py [--shape 3x0,3x1] [--keys K] [--slots S]
[--reps N] [--batch B] [--pipeline P] [--load-rate R] [--impl NAME | --impl-binary PATH]
[--json PATH]`` (``make bench-migration ARGS=...``). Exit status: 0 done, 1 a sample
failed, 2 bad usage or no CLI for the server, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from benchlib import add_common_args, parse_shapes, run_owned, stop_on_sigterm, write_json
from bringuplib import impl_json
from clicreate import die_with_parent
from migrationlib import Load, count_readable, fill, make_keys

from harness import ops
from harness.backends.base import Node
from harness.clitool import CliProgram, ClusterCli, host_cli
from harness.cluster import Cluster
from harness.errors import HarnessError, NotSupportedError
from harness.impl import Implementation, resolve
from harness.ops.migrate import wait_settled
from harness.runs import Run
from harness.spec import ClusterSpec
from harness.wait import wait_for

Kind = Literal["harness", "reference"]
KINDS: tuple[Kind, Kind] = ("harness", "reference")
CLI_PIPELINE_DEFAULT = 10  # redis-cli's --cluster-pipeline when not given
CLI_TIMEOUT_S = 120.0  # plus one second per 100 keys


@dataclass
class Settings:
    keys: int
    slots: int
    value_bytes: int
    batch: int
    pipeline: int | None
    load_rate: float
    load_max_ops: int
    load_max_s: float

    def describe(self, cli: str) -> str:
        pipe = self.pipeline or f"{CLI_PIPELINE_DEFAULT} (its default)"
        rate = f"{self.load_rate:g} ops/s" if self.load_rate > 0 else "unpaced"
        return (
            f"{self.keys} keys of {self.value_bytes} bytes in {self.slots} slots; "
            f"keys per MIGRATE: harness batch {self.batch}, {cli} --cluster-pipeline {pipe}; "
            f"load: 1 thread SET/GET, {rate}, at most {self.load_max_ops} ops / "
            f"{self.load_max_s:g} s"
        )


@dataclass
class Sample:
    kind: Kind
    rep: int
    keys: int  # keys the new master holds in the moved slots afterwards
    move_s: float  # migrate_slots(wait=False) returning / the CLI exiting
    settle_s: float  # then until wait_settled holds
    load_ops: int  # completed during move + settle
    load_errors: int
    load_missing: int
    load_error_kinds: dict[str, int] = field(default_factory=dict)
    load_bounded: bool = False  # the load hit its bound before the move ended

    @property
    def total_s(self) -> float:
        return self.move_s + self.settle_s

    @property
    def keys_per_s(self) -> float:
        return self.keys / self.total_s

    @property
    def mover_keys_per_s(self) -> float:
        return self.keys / self.move_s

    @property
    def load_ops_per_s(self) -> float:
        return self.load_ops / self.total_s

    def line(self) -> str:
        kinds = f" {self.load_error_kinds}" if self.load_error_kinds else ""
        cut = " (load hit its bound)" if self.load_bounded else ""
        return (
            f"rep {self.rep}  {self.kind:<9} {self.keys} keys  move {self.move_s:6.2f} s "
            f"+ settle {self.settle_s:5.2f} s = {self.keys_per_s:7.0f} keys/s "
            f"(mover alone {self.mover_keys_per_s:7.0f}); load {self.load_ops_per_s:5.0f} "
            f"ops/s, {self.load_errors} errors{kinds}, {self.load_missing} missing{cut}"
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out |= {
            "move_s": round(self.move_s, 3),
            "settle_s": round(self.settle_s, 3),
            "keys_per_s": round(self.keys_per_s, 1),
            "mover_keys_per_s": round(self.mover_keys_per_s, 1),
            "load_ops_per_s": round(self.load_ops_per_s, 1),
        }
        return out


@dataclass(frozen=True)
class Cli:
    """The reference tool and the run its processes are registered with."""

    program: CliProgram
    run: Run


def cli_reshard(program: CliProgram, run: Run, source: Node, target: Node, s: Settings) -> None:
    """The reference move: the server's own tool, in its own session, killed on any way
    out (Ctrl-C and SIGTERM included)."""
    cmd = [program.path, "--cluster", "reshard", source.public_addr]
    cmd += ["--cluster-from", str(source.node_id), "--cluster-to", str(target.node_id)]
    cmd += ["--cluster-slots", str(s.slots), "--cluster-yes"]
    if s.pipeline is not None:
        cmd += ["--cluster-pipeline", str(s.pipeline)]
    timeout = CLI_TIMEOUT_S + s.keys / 100
    code, out = run_owned(cmd, run, timeout, preexec_fn=die_with_parent(os.getpid()))
    if code != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        raise HarnessError(f"`{program.name} --cluster reshard` failed (exit {code}): {tail}")


def own_slots(cluster: Cluster, node: Node) -> list[int]:
    me = cluster.view(node, with_shards=False).myself
    return [s for lo, hi in (me.slots if me else ()) for s in range(lo, hi + 1)]


def sample(
    kind: Kind, rep: int, impl: Implementation, spec: ClusterSpec, s: Settings, cli: Cli
) -> Sample:
    with Cluster.start(impl, spec) as cluster:
        cluster.cli_check = False  # the second opinion is asked after the clock, for both
        source = cluster.owner_of_slot(0)
        slots = own_slots(cluster, source)[: s.slots]
        if len(slots) < s.slots:
            raise HarnessError(f"{source.addr} owns only {len(slots)} slots, --slots {s.slots}")
        target = ops.add_master(cluster)
        for _ in range(spec.replicas):
            ops.add_replica(cluster, target)
        keys = make_keys(slots, s.keys)
        fill(source, keys, s.value_bytes)
        if spec.replicas:  # the replicas have the keys before the move starts
            source.call("WAIT", spec.replicas, 10_000, timeout=15.0)
        program = cli.program if kind == "reference" else None
        load = Load(
            cluster, keys, size=s.value_bytes, rate=s.load_rate,
            max_ops=s.load_max_ops, max_s=s.load_max_s, seed=rep, new_masters=[target],
        )  # fmt: skip
        load.start()
        try:
            wait_for(load.started, 30.0, "the background load's first op")
            before = load.mark()
            if program is None:
                ops.migrate_slots(cluster, source, target, slots, batch=s.batch, wait=False)
            else:
                cli_reshard(program, cli.run, source, target, s)
            t1 = time.monotonic()
            if program is not None and own_slots(cluster, target) != slots:
                raise HarnessError(f"{program.name} did not move slots {slots[0]}..{slots[-1]}")
            t1b = time.monotonic()
            wait_settled(cluster, dict.fromkeys(slots, target))
            after = load.mark()
        finally:
            load.stop()
        move_s = t1 - before.at
        settle_s = after.at - t1b
        verify(cluster, target, slots, keys)
        return Sample(
            kind, rep, len(keys), move_s, settle_s,
            load_ops=after.ok - before.ok,
            load_errors=after.errors - before.errors,
            load_missing=after.missing - before.missing,
            load_error_kinds=dict(load.kinds),
            load_bounded=load.bounded,
        )  # fmt: skip


def verify(cluster: Cluster, target: Node, slots: list[int], keys: list[str]) -> None:
    """Every key readable, all of them on the new master, the tool's check whole."""
    readable = count_readable(cluster, keys)
    with cluster.node_client(target, 10.0) as c:
        pipe = c.pipeline(transaction=False)
        for slot in slots:
            pipe.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)  # type: ignore[no-untyped-call]
        held = sum(int(n) for n in pipe.execute())
    problems = []
    if readable != len(keys):
        problems.append(f"{readable} of {len(keys)} keys readable")
    if held != len(keys):
        problems.append(f"the new master holds {held} of {len(keys)} keys")
    try:
        verdict = ClusterCli(cluster).check()
    except NotSupportedError:
        verdict = None
    if verdict is not None and not verdict.ok:
        problems.append(f"--cluster check: {verdict.describe()}")
    if problems:
        raise HarnessError("after the move: " + "; ".join(problems))


def medians(samples: dict[Kind, list[Sample]]) -> dict[str, Any]:
    def med(kind: Kind, attr: str) -> float:
        return float(statistics.median(getattr(x, attr) for x in samples[kind]))

    out: dict[str, Any] = {}
    for attr in ("keys_per_s", "mover_keys_per_s", "load_ops_per_s", "move_s", "settle_s"):
        out[attr] = {k: round(med(k, attr), 3) for k in KINDS}
    out["ratio"] = round(med("harness", "keys_per_s") / med("reference", "keys_per_s"), 3)
    out["mover_ratio"] = round(
        med("harness", "mover_keys_per_s") / med("reference", "mover_keys_per_s"), 3
    )
    out["keys_per_s_range"] = {
        k: [round(f(x.keys_per_s for x in samples[k])) for f in (min, max)] for k in KINDS
    }
    out["load_errors"] = {k: sum(x.load_errors for x in samples[k]) for k in KINDS}
    out["load_missing"] = {k: sum(x.load_missing for x in samples[k]) for k in KINDS}
    return out


def loadavg() -> list[float]:
    """The machine's 1/5/15-minute load: the figures are only comparable within a run."""
    return [round(x, 2) for x in os.getloadavg()]


def print_table(rows: list[dict[str, Any]], cli: str) -> None:
    print(f"migration under load, medians; keys/s to settled (mover alone); harness/{cli}")
    print(
        f"  {'shape':<6}{'harness':>16}{cli:>18}{'ratio':>7}{'(mover)':>9}"
        f"{'load ops/s h|r':>16}{'errors h|r':>12}{'missing h|r':>13}"
    )
    for row in rows:
        m = row["medians"]
        k, mk, lo = m["keys_per_s"], m["mover_keys_per_s"], m["load_ops_per_s"]
        er, mi = m["load_errors"], m["load_missing"]
        print(
            f"  {row['shape']:<6}"
            f"{k['harness']:>7.0f} ({mk['harness']:>6.0f}){k['reference']:>9.0f} "
            f"({mk['reference']:>6.0f}){m['ratio']:>7.2f}{m['mover_ratio']:>9.2f}"
            f"{lo['harness']:>9.0f}|{lo['reference']:<6.0f}"
            f"{er['harness']:>7}|{er['reference']:<4}{mi['harness']:>8}|{mi['reference']:<4}"
        )


def take_all(
    impl: Implementation, spec: ClusterSpec, s: Settings, cli: Cli, reps: int
) -> dict[Kind, list[Sample]]:
    samples: dict[Kind, list[Sample]] = {k: [] for k in KINDS}
    for rep in range(1, reps + 1):
        for kind in KINDS if rep % 2 else KINDS[::-1]:
            x = sample(kind, rep, impl, spec, s, cli)
            samples[kind].append(x)
            print(x.line(), flush=True)
    return samples


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        shapes = parse_shapes(args.shape)
        impl = resolve(args.impl, args.impl_binary)
    except (ValueError, HarnessError) as exc:
        print(f"migration: {exc}", file=sys.stderr)
        return 2
    try:
        program = host_cli(impl)
    except NotSupportedError as exc:
        print(f"migration: no reference tool: {exc}", file=sys.stderr)
        return 2
    s = Settings(
        args.keys, args.slots, args.value_bytes, args.batch, args.pipeline,
        args.load_rate, args.load_max_ops, args.load_max_s,
    )  # fmt: skip
    stop_on_sigterm()
    run = Run.current()
    load_start = loadavg()
    print(f"migration under load, {impl.describe()}; load average {load_start}")
    print(f"reference: {program.describe()} --cluster reshard; {args.reps} reps, alternating")
    print(s.describe(program.name), flush=True)
    rows: list[dict[str, Any]] = []
    try:
        for masters, replicas in shapes:
            spec = ClusterSpec(masters=masters, replicas=replicas)
            print(f"-- {masters}x{replicas}: {s.slots} slots to a new master", flush=True)
            samples = take_all(impl, spec, s, Cli(program, run), args.reps)
            row: dict[str, Any] = {
                "shape": f"{masters}x{replicas}",
                "samples": [x.to_json() for k in KINDS for x in samples[k]],
                "medians": medians(samples),
            }
            m = row["medians"]
            spread = ", ".join(f"{k} {lo}..{hi}" for k, (lo, hi) in m["keys_per_s_range"].items())
            print(f"ratio harness/reference {m['ratio']:.2f}; keys/s range {spread}", flush=True)
            rows.append(row)
    except KeyboardInterrupt:
        print("migration: interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except HarnessError as exc:
        print(f"migration: {exc}", file=sys.stderr)
        return 1
    finally:
        run.close()
    print_table(rows, program.name)
    print(f"load average at the end {loadavg()}")
    if args.json:
        result = {
            "impl": impl_json(impl),
            "cli": {"path": program.path, "version": program.version_text},
            "settings": asdict(s) | {"cli_pipeline": s.pipeline or CLI_PIPELINE_DEFAULT},
            "reps": args.reps,
            "loadavg": {"start": load_start, "end": loadavg()},
            "shapes": rows,
        }
        if not write_json("migration", args.json, result):
            return 1
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--shape", default="3x0", help="MASTERSxREPLICAS, comma-separated (3x0)")
    p.add_argument("--keys", type=int, default=20000, help="keys in the moved slots (20000)")
    p.add_argument("--slots", type=int, default=1000, help="slots moved (1000)")
    p.add_argument("--value-bytes", type=int, default=100, help="size of each value (100)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of each (3)")
    p.add_argument("--batch", type=int, default=100, help="harness keys per MIGRATE (100)")
    p.add_argument(
        "--pipeline",
        type=int,
        help=f"the CLI's --cluster-pipeline (default: not passed; the tool's "
        f"{CLI_PIPELINE_DEFAULT}); 100 matches the harness's batch",
    )
    p.add_argument("--load-rate", type=float, default=1000.0, help="ops/s, 0 unpaced (1000)")
    p.add_argument("--load-max-ops", type=int, default=1_000_000, help="load bound (1000000)")
    p.add_argument("--load-max-s", type=float, default=600.0, help="load bound in s (600)")
    add_common_args(p)
    args = p.parse_args(argv)
    for name in ("keys", "slots", "reps", "batch", "value_bytes", "load_max_ops"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pipeline is not None and args.pipeline < 1:
        p.error("--pipeline must be at least 1")
    if args.slots > args.keys:
        p.error("--slots must not exceed --keys: every moved slot holds keys")
    return args


if __name__ == "__main__":
    sys.exit(main())
