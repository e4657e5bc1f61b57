"""A rehearsal: one plan carried out on a running cluster under a recorded workload,
checked after every step, judged at the end.

The verdict is about the procedure, not the harness: ``safe`` when every step
completed, every check held at the end, and no acknowledged write was lost outside the
windows of failovers and primary restarts; ``unsafe`` with the reasons (writes lost,
a step that could not complete, slots left uncovered) and the risks named from the
nodes' own logs (:mod:`harness.upgrade.risks`); a harness error is never a verdict.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from harness import progress
from harness.checkers import REPLICATION_GRACE_MS, availability, check_set
from harness.checkers.sets import SetResult
from harness.crc16 import SLOTS
from harness.errors import HarnessError
from harness.history import History
from harness.impl import Implementation
from harness.upgrade import checks
from harness.upgrade.checks import Check
from harness.upgrade.plan import Plan, PlanKind, Shard, Step, make_plan
from harness.upgrade.risks import Risk, can_replicate, classify, foreseen
from harness.upgrade.steps import Executor, StepFailed

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster
    from harness.workload import Workload

Verdict = Literal["safe", "unsafe"]


@dataclass
class StepRecord:
    """What happened at one step: its span, outcome, checks and what clients saw."""

    step: Step
    start_ns: int
    end_ns: int = 0
    status: Literal["ok", "failed", "skipped"] = "ok"
    result: str = ""
    error: str = ""
    checks: list[Check] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    unavailable_ms: dict[str, float] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6 if self.end_ns else 0.0

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def to_json(self, origin_ns: int) -> dict[str, Any]:
        return {
            **self.step.to_json(),
            "start_ms": round((self.start_ns - origin_ns) / 1e6, 1),
            "duration_ms": round(self.ms, 1),
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "checks": [c.to_json() for c in self.checks],
            "versions": self.versions,
            "unavailable_ms": self.unavailable_ms,
            "client_errors": self.client_errors,
        }


@dataclass
class Rehearsal:
    plan: Plan
    backend: str
    records: list[StepRecord] = field(default_factory=list)
    risks: list[Risk] = field(default_factory=list)
    loss: SetResult | None = None
    verdict: Verdict = "safe"
    reasons: list[str] = field(default_factory=list)
    origin_ns: int = 0
    rollback: Rehearsal | None = None

    @property
    def lost_outside_windows(self) -> int:
        if self.loss is None:
            return 0
        return sum(s.count for c, s in self.loss.lost.items() if c != "in-window")

    def summary(self) -> str:
        """The verdict in one paragraph (the test's message, the CLI's last lines)."""
        head = f"{self.plan.kind} {self.plan.source} -> {self.plan.target}: {self.verdict.upper()}"
        lines = [head, *[f"  - {r}" for r in self.reasons]]
        lines += [f"  risk: {r.describe()}" for r in self.risks]
        if self.rollback is not None:
            lines.append("rollback: " + self.rollback.summary().replace("\n", "\n  "))
        return "\n".join(lines)

    def table(self) -> str:
        """One line per step: outcome, duration, the checks that failed."""
        out = []
        for r in self.records:
            bad = ", ".join(c.name for c in r.failed_checks()) or "all checks ok"
            gone = max(r.unavailable_ms.values(), default=0.0)
            out.append(
                f"{r.step.describe():60} {r.status:7} {r.ms:8.0f} ms  "
                f"max unavailable {gone:6.0f} ms  {bad if r.status != 'skipped' else ''}"
            )
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        loss = self.loss
        return {
            "plan": self.plan.to_json(),
            "backend": self.backend,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "risks": [r.to_json() for r in self.risks],
            "steps": [r.to_json(self.origin_ns) for r in self.records],
            "writes": None
            if loss is None
            else {
                "acknowledged": loss.acknowledged,
                "unknown": loss.unknown_writes,
                "failed": loss.failed,
                "lost": {c: s.count for c, s in loss.lost.items()},
                "lost_outside_windows": self.lost_outside_windows,
                "examples": [e.describe() for s in loss.lost.values() for e in s.examples][:10],
            },
            "rollback": None if self.rollback is None else self.rollback.to_json(),
        }


def shards_of(cluster: Cluster) -> list[Shard]:
    """The cluster's shards as a plan names them, in slot order."""
    masters = sorted(cluster.masters(), key=cluster.first_slot)
    return [Shard(m.name, tuple(r.name for r in cluster.replicas_of(m))) for m in masters]


def plan_for(cluster: Cluster, target: Implementation, kind: PlanKind) -> Plan:
    """The plan ``kind`` for this cluster's shards, moving it to ``target``."""
    source = cluster.impl
    plan = make_plan(
        kind,
        shards_of(cluster),
        source=f"{source.flavor} {source.version_str}",
        target=f"{target.flavor} {target.version_str}",
        persistence=cluster.spec.persistence,
        replica_can_sync_from_target=can_replicate(
            (target.flavor, target.version), (source.flavor, source.version)
        ),
    )
    return with_foreseen(plan, source, target, cluster.spec.persistence, cluster.spec.server_args)


def with_foreseen(
    plan: Plan,
    source: Implementation,
    target: Implementation,
    persistence: str,
    server_args: Sequence[tuple[str, str]] = (),
) -> Plan:
    """``plan`` with what the two versions will meet in its notes (RDB formats, shard
    ids, bus extensions), known before anything runs."""
    hostname = any(k == "cluster-announce-hostname" for k, _ in server_args)
    risks = foreseen(
        (source.flavor, source.version),
        (target.flavor, target.version),
        persistence=persistence,
        hostname=hostname,
    )
    extra = tuple(
        f"foreseen: {r.name}: {r.evidence} -> {r.advice}"
        for r in risks
        if r.name != "rdb-format-bump"  # the plan's own note says it, for its order
    )
    return replace(plan, notes=plan.notes + extra)


def rehearse(
    cluster: Cluster,
    target: Implementation,
    plan: Plan,
    workload: Callable[[Cluster], Workload],
    *,
    restart_check: bool = True,
    timeout: float | None = None,
) -> Rehearsal:
    """Carry out ``plan`` under a workload ``workload(cluster)`` makes, checking after
    every step; stops at the first step that cannot complete (the rest are skipped)."""
    ex = Executor(cluster, target, timeout)
    out = Rehearsal(plan, cluster.backend.name, origin_ns=time.monotonic_ns())
    wl = workload(cluster).start()
    wl.wait_ops(100, timeout=ex.bound())
    shard_primary = {i: s.primary for i, s in enumerate(plan.shards)}
    try:
        for step in plan.steps:
            rec = StepRecord(step, time.monotonic_ns())
            out.records.append(rec)
            if any(r.status == "failed" for r in out.records[:-1]):
                rec.status = "skipped"
                continue
            progress.phase(
                f"upgrade step {step.index}/{len(plan.steps)}: {step.action} {step.node}"
            )
            marks = {n.name: len(n.log_text(200_000)) for n in cluster.live_nodes()}
            try:
                rec.result = ex.run(step, shard_primary[step.shard])
            except StepFailed as exc:
                rec.status, rec.error = "failed", str(exc)
                out.risks += _named(classify(exc.node.name, exc.log, error=str(exc)), step)
            except HarnessError as exc:
                rec.status, rec.error = "failed", f"{type(exc).__name__}: {exc}"
                out.risks += _named(_log_risks(cluster, marks), step)
            _check(cluster, ex, rec, restart_check)
            rec.end_ns = time.monotonic_ns()
            if rec.failed_checks():
                found = _log_risks(cluster, marks)
                out.risks += _named(found or _check_risks(rec), step)
    finally:
        wl.stop()
    if all(r.status == "ok" for r in out.records):
        cluster.impl = target  # the cluster tool and capabilities of the new version
    history = wl.final_read(timeout=ex.bound())
    _judge(out, cluster, history)
    return out


def _check(cluster: Cluster, ex: Executor, rec: StepRecord, restart_check: bool) -> None:
    if not rec.step.sync:  # the plan goes on at once, on purpose: nothing has settled
        rec.checks.append(Check("all", "unknown", "not checked: the plan does not wait here"))
        return
    bound = ex.bound()
    rec.checks.append(checks.topology(cluster, bound))
    rec.checks.append(checks.one_primary_per_shard(cluster, bound))
    rec.checks.append(checks.replicas_synced(cluster, bound))
    check, rec.versions = checks.versions(cluster)
    rec.checks.append(check)
    if cluster.cli_check:
        rec.checks.append(checks.server_tool(cluster))
    node = ex.upgraded
    if restart_check and node is not None and rec.status == "ok":
        rec.checks.append(_restart(cluster, ex, node))


def _restart(cluster: Cluster, ex: Executor, node: Node) -> Check:
    """Stop the node just upgraded and start it again: it must reload its own
    ``nodes.conf`` (and data) and come back in its role."""
    me = cluster.view(node, with_shards=False).myself
    primary = me is not None and "master" in me.flags
    if primary and cluster.spec.persistence == "none":
        return Check("restart", "unknown", "a primary without persistence would restart empty")
    master = None if primary or me is None or not me.master_id else cluster.node_by_id(me.master_id)
    t0 = time.monotonic()
    cluster.record("restart-check", node.addr, node.name, ahead=True)
    node.stop()
    try:
        ex.restart(node, master)
    except StepFailed as exc:
        return Check("restart", "fail", str(exc).splitlines()[0][:400], _since(t0))
    cluster.record("restart-check-done", node.addr, node.name)
    return Check("restart", "ok", f"{node.name} back in its role", _since(t0))


def _since(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 1)


def _log_risks(cluster: Cluster, marks: dict[str, int]) -> list[Risk]:
    found: list[Risk] = []
    for n in cluster.live_nodes():
        tail = n.log_text(200_000)[marks.get(n.name, 0) :]
        found += classify(n.name, tail)
    return found


#: what a failed check says when a node of the new version mis-groups shards in a mixed
#: cluster (measured: Valkey 8.0.1 beside Redis 7.0 nodes, which send no shard-id)
SHARDS_SIGNS = ("claimed by several nodes", "absent from CLUSTER SHARDS", "primaries")


def _check_risks(rec: StepRecord) -> list[Risk]:
    """A check that failed with nothing in the logs to explain it is a risk of its own
    (the verdict is still decided by the end state and the writes)."""
    mixed = len(set(rec.versions.values())) > 1
    shards = [
        c
        for c in rec.failed_checks()
        if mixed and c.name in ("coverage-and-agreement", "one-primary-per-shard")
        if any(sign in c.detail for sign in SHARDS_SIGNS)
    ]
    named = [
        Risk(
            "cluster-shards-wrong-in-mixed-cluster",
            "warning",
            rec.step.node,
            c.detail,
            "while versions are mixed, CLUSTER SHARDS on the new nodes groups nodes into "
            "wrong shards: they give a node of a version that announces no shard-id "
            "(Redis < 7.2) one of their own (shard ids: redis/redis#10536; the load path: "
            "chideat/valkey-operator#106); clients that route by CLUSTER SHARDS can lose "
            "slots: keep the mixed phase short, or move by the replace plan",
        )
        for c in shards[:1]
    ]
    return named + [
        Risk(
            f"check-failed-{c.name}",
            "warning",
            rec.step.node,
            c.detail,
            "the cluster was not whole after this step: do not go on with the next one "
            "before it is",
        )
        for c in rec.failed_checks()
        if c not in shards
    ]


def _named(risks: list[Risk], step: Step) -> list[Risk]:
    return [replace(r, step=step.index) for r in risks]


def _judge(out: Rehearsal, cluster: Cluster, history: History) -> None:
    """Per step: unavailability and client errors; the loss verdict; dedup of risks."""
    owners = cluster.view(cluster.live_nodes()[0], with_shards=False).slot_owners()
    first: dict[str | None, int] = {}
    for slot in range(SLOTS - 1, -1, -1):
        first[owners[slot]] = slot

    def shard(slot: int) -> str:  # named by its first slot: a name failovers keep
        return f"slots from {first[owners[slot]]}" if owners[slot] else "no owner"

    for rec in out.records:
        if rec.status == "skipped":
            continue
        span = History(
            [
                o
                for o in history.ops
                if rec.start_ns <= o.invoke_ns <= rec.end_ns and o.kind == "add"
            ]
        )
        rec.unavailable_ms = {
            k: round(v.total_ms, 1) for k, v in availability(span, shard).items() if v.windows
        }
        errors = Counter(
            (o.error or o.outcome).split("\n")[0][:80] for o in span.ops if o.outcome != "ok"
        )
        rec.client_errors = dict(errors.most_common(8))
    out.loss = check_set(history, grace_ns=int(REPLICATION_GRACE_MS * 1e6))
    unique: dict[tuple[str, str], Risk] = {}
    for r in out.risks:  # the first step that met it
        unique.setdefault((r.name, r.node), r)
    out.risks = list(unique.values())
    failed = [r for r in out.records if r.status == "failed"]
    if failed:
        out.reasons.append(f"step {failed[0].step.describe().strip()} failed: {failed[0].error}")
    lost = out.lost_outside_windows
    if lost:
        out.reasons.append(
            f"{lost} acknowledged writes lost outside failover windows "
            f"(of {out.loss.acknowledged} acknowledged)"
        )
    in_window = out.loss.lost.get("in-window")
    if in_window is not None and in_window.count:
        out.reasons.append(f"{in_window.count} acknowledged writes lost inside failover windows")
    last = next((r for r in reversed(out.records) if r.status != "skipped"), None)
    if last is not None:
        out.reasons += [f"at the end: {c.describe()}" for c in last.checks if c.status == "fail"]
    if any(r.severity == "unsafe" for r in out.risks) and not failed and not lost:
        out.reasons.append("risks the procedure survived: see below")
    unsafe = bool(failed or lost or any(c.status == "fail" for c in (last.checks if last else [])))
    out.verdict = "unsafe" if unsafe else "safe"
    if not out.reasons:
        out.reasons.append(
            f"every step completed and checked; {out.loss.acknowledged} acknowledged writes, "
            "none lost"
        )
