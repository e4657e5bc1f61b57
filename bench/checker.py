"""Checker benchmark: how long the consistency checkers take on million-op histories.

Generates, deterministically from ``--seed``, a synthetic set-workload history of
``--ops`` operations (default 1,000,000) over three shards with three fault windows:

* a master of shard 0 killed: its writes fail or are unknown until its replica is
  promoted, then the old master starts again;
* a partition isolating the master of shard 1: it keeps acknowledging writes for a
  while (those are lost, the documented Redis Cluster behaviour), then refuses them;
* a pause of the master of shard 2: writes time out (unknown) until it resumes;

plus unknown writes scattered over the whole run (half of them applied), final reads
of every key, and a few deliberate losses: acknowledged before any fault, inside a
window, after the heals, and one value in a final read that was never added.
``check_set`` + ``availability`` are timed together (the target: median ≤ 3 s), and
``check_register`` on a register history of the same size with planted stale reads.
Each run also checks that the checkers found exactly what was planted.

Usage: ``.venv/bin/python bench/checker.py [--ops N] [--reps N] [--seed N]``.
Exit status: 0 target met, 1 a checker gave a wrong answer, 3 target missed.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from harness.checkers import SetResult, Unavailable, availability, check_register, check_set
from harness.history import Event, History, Op, Outcome

T = TypeVar("T")

TARGET_S = 3.0
SLOTS = 16384
SHARDS = ("shard-0", "shard-1", "shard-2")
MS = 1_000_000


def shard_of_slot(slot: int) -> str:
    return SHARDS[slot * len(SHARDS) // SLOTS]


def key_slots(keys: int) -> list[tuple[str, int]]:
    return [(f"k{i}", (i * SLOTS // keys + 17) % SLOTS) for i in range(keys)]


@dataclass
class Planted:
    """What the generator put in, for checking the checkers' answers."""

    lost: dict[str, int]
    unexpected: int
    recovered: int
    unknown: int
    stale: int = 0
    outages: dict[str, int] = field(default_factory=dict)  # shard -> longest outage, ns


def set_history(ops: int, seed: int, keys: int = 240) -> tuple[History, Planted]:
    """A set-workload history of ``ops`` adds and one final read per key. Fault
    durations scale with the history (``u`` is 1 ms at a million ops)."""
    rng = random.Random(seed)
    ks = key_slots(keys)
    t0 = 10**12
    step = 20_000  # 20 µs between invocations: 1M ops span 20 s
    span = ops * step
    u = span // 20_000
    kill = (t0 + span // 5, t0 + span // 5 + 1100 * u, t0 + span // 5 + 3000 * u)
    part = (t0 + span // 2, t0 + span // 2 + 1000 * u, t0 + span // 2 + 1500 * u)
    pause_at, resume_at = t0 + 4 * span // 5, t0 + 4 * span // 5 + 800 * u
    events = [
        Event(kill[0], "kill", "m0"),
        Event(kill[0] + 900 * u, "fail-flag", "m0"),
        Event(kill[1], "promoted", "r0"),
        Event(kill[2], "start", "m0"),
        Event(part[0], "partition", "cluster", "isolate m1"),
        Event(part[1], "promoted", "r1"),
        Event(part[2], "heal", "cluster"),
        Event(pause_at, "pause", "m2"),
        Event(resume_at, "resume", "m2"),
    ]
    out: list[Op] = []
    final: dict[str, set[int]] = {k: set() for k, _ in ks}
    lost = {"before-faults": 0, "in-window": 0, "after-heal": 0}
    recovered = unknown = 0
    plant_before = {ops // 20, ops // 10, 3 * ops // 20}  # before the kill at 1/5
    plant_after = {ops - ops // 50, ops - ops // 100}  # after the resume at 0.84
    t = t0
    for i in range(ops):
        key, slot = ks[rng.randrange(keys)]
        shard = slot * 3 // SLOTS
        t += rng.randrange(step // 2, step * 3 // 2)
        done = t + rng.randrange(100_000, 800_000)
        outcome: Outcome = "ok"
        applied = True
        if i in plant_before or i in plant_after:
            applied = False
            lost["before-faults" if i in plant_before else "after-heal"] += 1
        elif shard == 0 and kill[0] <= t < kill[1]:
            outcome = "info" if t < kill[0] + 5 * u else "fail"
            applied = False
        elif shard == 1 and part[0] <= t < part[1]:
            if t < part[0] + 600 * u:  # acked by the cut-off master, lost on heal
                lost["in-window"] += 1
                applied = False
            else:
                outcome = "fail"
                applied = False
        elif shard == 2 and pause_at <= t < resume_at:
            outcome, done, applied = "info", t + 500 * u, False
        elif rng.random() < 0.001:
            outcome, done = "info", t + 500 * u
            applied = rng.random() < 0.5
        if outcome == "info":
            unknown += 1
            recovered += applied
        out.append(Op(i, i % 16, "add", key, slot, i, t, done, outcome))
        if applied:
            final[key].add(i)
    final[ks[0][0]].add(-1)  # never added
    t += 2000 * u
    for j, (key, slot) in enumerate(ks):
        out.append(Op(ops + j, -1, "final-read", key, slot, sorted(final[key]), t, t + MS, "ok"))
        t += MS
    outages = {"shard-0": 1100 * u, "shard-1": 400 * u, "shard-2": 800 * u}
    return History(out, events), Planted(lost, 1, recovered, unknown, outages=outages)


def register_history(ops: int, seed: int, keys: int = 240) -> tuple[History, Planted]:
    """A register history: 30 % writes (one writer per key, increasing versions), 70 %
    reads returning the newest version acknowledged before they began, or a concurrent
    newer one; a few reads planted stale."""
    rng = random.Random(seed)
    ks = key_slots(keys)
    writes: dict[str, list[tuple[int, int, int]]] = {k: [] for k, _ in ks}  # inv, done, ver
    version = dict.fromkeys(writes, 0)
    out: list[Op] = []
    stale = 0
    t = 10**12
    for i in range(ops):
        key, slot = ks[rng.randrange(keys)]
        t += rng.randrange(10_000, 30_000)
        done = t + rng.randrange(100_000, 800_000)
        if rng.random() < 0.3:
            version[key] += 1
            outcome: Outcome = "info" if rng.random() < 0.001 else "ok"
            writes[key].append((t, done, version[key]))
            out.append(Op(i, i % 16, "write", key, slot, version[key], t, done, outcome))
            continue
        value: int | None = None
        concurrent: int | None = None
        for w_inv, w_done, ver in reversed(writes[key]):
            if w_done < t:  # versions grow with invocation: the newest completed
                value = ver
                break
            if concurrent is None and w_inv < done:
                concurrent = ver
        if concurrent is not None and rng.random() < 0.5:
            value = concurrent  # a read overlapping a write may see it
        elif value is not None and value > 1 and i % (ops // 20) == 7:
            value -= 1
            stale += 1
        out.append(Op(i, i % 16, "read", key, slot, value, t, done, "ok"))
    return History(out, []), Planted({}, 0, 0, 0, stale)


def timed(fn: Callable[[], T], reps: int) -> tuple[float, list[float], T]:
    """Median and samples of ``reps`` calls (after a collection each, so one call's
    garbage does not slow the next), and the last result."""
    samples: list[float] = []
    for _ in range(reps):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples, result


def bench_set(ops: int, seed: int, reps: int) -> tuple[bool, list[str]]:
    """Time check_set + availability; (target met, wrong answers)."""
    wrong: list[str] = []
    t = time.perf_counter()
    hist, planted = set_history(ops, seed)
    print(f"set history: {len(hist.ops)} ops generated in {time.perf_counter() - t:.1f} s")

    def run() -> tuple[SetResult, dict[str, Unavailable]]:
        return check_set(hist), availability(hist, shard_of_slot)

    median, samples, (result, unavailable) = timed(run, reps)
    print(result.describe().split("\n")[0])
    found = {c: s.count for c, s in result.lost.items()}
    if found != planted.lost:
        wrong.append(f"lost {found}, planted {planted.lost}")
    got = (result.unexpected_count, result.recovered, result.unknown_writes)
    want = (planted.unexpected, planted.recovered, planted.unknown)
    if got != want:
        wrong.append(f"unexpected/recovered/unknown {got}, planted {want}")
    for u in unavailable.values():
        print("  " + u.describe(result.origin_ns, limit=0))
    for name, want_ns in planted.outages.items():
        longest = max((w.end_ns - w.start_ns for w in unavailable[name].windows), default=0)
        if abs(longest - want_ns) > want_ns // 10:
            wrong.append(f"{name}: longest outage {longest / MS:.1f} ms, planted {want_ns / MS} ms")
    met = median <= TARGET_S
    print(
        f"check_set + availability: median {median:.3f} s over {reps} reps "
        f"({', '.join(f'{s:.3f}' for s in samples)}); target ≤ {TARGET_S:.0f} s: "
        f"{'met' if met else 'MISSED'}"
    )
    return met, wrong


def bench_register(ops: int, seed: int, reps: int) -> list[str]:
    """Time check_register; wrong answers."""
    t = time.perf_counter()
    hist, planted = register_history(ops, seed)
    print(f"register history: {len(hist.ops)} ops generated in {time.perf_counter() - t:.1f} s")
    median, samples, reg = timed(lambda: check_register(hist), reps)
    print(reg.describe().split("\n")[0])
    print(
        f"check_register: median {median:.3f} s over {reps} reps "
        f"({', '.join(f'{s:.3f}' for s in samples)})"
    )
    if reg.stale_count != planted.stale or reg.unexpected_count or reg.failed_read_count:
        return [f"stale {reg.stale_count}, planted {planted.stale}"]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=1_000_000, help="at least 10000")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.ops < 10_000 or args.reps < 1:
        ap.error("--ops must be at least 10000 and --reps at least 1")
    met, wrong = bench_set(args.ops, args.seed, args.reps)
    wrong += bench_register(args.ops, args.seed, args.reps)
    for w in wrong:
        print(f"WRONG: {w}", file=sys.stderr)
    return 1 if wrong else 0 if met else 3


if __name__ == "__main__":
    sys.exit(main())
