"""The page model: a test's files turned into what its section shows, by pure functions.

Times are seconds since the test's first recorded instant (an op or an event: one
monotonic clock). Ops are counted in buckets of a fixed width chosen so that a
60 s run keeps 10 ms detail: the page stays small by bucketing, never by dropping ops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.checkers import REPLICATION_GRACE_MS, availability, check_set, failover_phases
from harness.checkers.windows import fault_windows
from harness.crc16 import SLOTS
from harness.history import Event, History
from harness.htmlreport.load import TestFiles
from harness.htmlreport.regressions import ScenarioRow, scenario_rows
from harness.htmlreport.upgrades import RehearsalView, upgrade_views
from harness.nemesis import Step
from harness.rules import Rule

#: at most this many buckets per timeline: a 60 s chaos run with its warm-up and
#: settling (up to 80 s) keeps 10 ms detail
MAX_BUCKETS = 8000
NICE_MS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
#: rows of the lost / unexpected writes table, of the events table; faults with phases
MAX_ROWS = 200
MAX_PHASED = 20
TAIL_LINES = 40


@dataclass(frozen=True)
class Buckets:
    """Ops invoked in each bucket by outcome, and the latency of those that completed."""

    width_ms: int
    ok: list[int]
    fail: list[int]
    info: list[int]
    p50_ms: list[float | None]
    p99_ms: list[float | None]


@dataclass(frozen=True)
class Band:
    """A fault window: ``closed`` False when it was never healed."""

    start_s: float
    end_s: float
    label: str
    closed: bool


@dataclass(frozen=True)
class Marker:
    t_s: float
    label: str


@dataclass(frozen=True)
class PhaseRow:
    """One fault and the steps of the failover it caused, in ms after it (None: unseen)."""

    fault: str
    t_s: float
    first_error_ms: float | None
    fail_flag_ms: float | None
    promoted_ms: float | None
    first_ok_ms: float | None


@dataclass(frozen=True)
class ShardRow:
    shard: str
    writes: int
    failed: int
    unavailable_ms: float
    outages: list[tuple[float, float, bool]]  # (start s, end s, recovered)


@dataclass(frozen=True)
class WriteRow:
    what: str  # lost | unexpected | failed but present
    key: str
    value: str
    acked_s: float | None
    node: str
    cls: str


@dataclass(frozen=True)
class EventRow:
    t_s: float
    cluster: int
    action: str
    node: str
    detail: str


@dataclass(frozen=True)
class LogTail:
    name: str
    href: str
    tail: str


@dataclass
class TestView:
    nodeid: str
    anchor: str
    outcome: str
    duration_s: float
    metrics: dict[str, Any]
    message: str
    verdict: str = ""
    span_s: float = 0.0
    buckets: Buckets | None = None
    bands: list[Band] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    phases: list[PhaseRow] = field(default_factory=list)
    shards: list[ShardRow] = field(default_factory=list)
    writes: list[WriteRow] = field(default_factory=list)
    writes_total: int | None = None  # None: not a set workload
    schedule: list[str] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    logs: list[LogTail] = field(default_factory=list)
    history_href: str | None = None
    rule: Rule | None = None  # the rule the test states (harness.rules)


def bucket_width_ms(span_ns: int) -> int:
    need = span_ns / 1e6 / MAX_BUCKETS
    return next((w for w in NICE_MS if w >= need), NICE_MS[-1])


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of a sorted, non-empty sequence."""
    i = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[min(i, len(sorted_values) - 1)]


def buckets(history: History, origin_ns: int, end_ns: int) -> Buckets:
    """Client ops (final reads excluded) by invocation time."""
    width = bucket_width_ms(end_ns - origin_ns)
    n = max(1, math.ceil((end_ns - origin_ns) / (width * 1e6)))
    ok, fail, info = [0] * n, [0] * n, [0] * n
    lat: list[list[float]] = [[] for _ in range(n)]
    counts = {"ok": ok, "fail": fail, "info": info}
    for o in history.ops:
        if o.kind == "final-read":
            continue
        i = min(n - 1, max(0, int((o.invoke_ns - origin_ns) // (width * 1_000_000))))
        counts[o.outcome][i] += 1
        if o.complete_ns >= o.invoke_ns > 0:
            lat[i].append((o.complete_ns - o.invoke_ns) / 1e6)
    p50: list[float | None] = []
    p99: list[float | None] = []
    for values in lat:
        values.sort()
        p50.append(round(percentile(values, 0.5), 2) if values else None)
        p99.append(round(percentile(values, 0.99), 2) if values else None)
    return Buckets(width, ok, fail, info, p50, p99)


def span(history: History | None, events: Iterable[Event]) -> tuple[int, int]:
    """The first and last instants the test recorded (0, 0: none)."""
    times = [e.t_ns for e in events]
    if history is not None:
        for o in history.ops:
            times.append(o.invoke_ns)
            if o.complete_ns:
                times.append(o.complete_ns)
    return (min(times), max(times)) if times else (0, 0)


def shard_namer(clusters: Sequence[dict[str, Any]]) -> Callable[[int], str]:
    """Slot -> "shard0 (n0 host:port)" from the first cluster's shape as formed."""
    shards = clusters[0].get("shards", []) if clusters else []
    if not shards:
        return lambda slot: "all slots"
    names = {}
    for s in shards:
        lo, hi = s["slots"]
        names[(lo, hi)] = f"{s['name']} {lo}-{hi} ({s['master']})"

    def name(slot: int) -> str:
        return next((v for (lo, hi), v in names.items() if lo <= slot <= hi), "unassigned")

    return name


def slots_of_node(clusters: Sequence[dict[str, Any]], addr: str) -> frozenset[int]:
    """The slots a node served as formed (every slot when it was no master: a fault on a
    replica or the whole cluster may touch any shard)."""
    for c in clusters:
        for s in c.get("shards", []):
            if s["master"] == addr:
                lo, hi = s["slots"]
                return frozenset(range(lo, hi + 1))
    return frozenset(range(SLOTS))


def test_view(tf: TestFiles) -> TestView:
    r = tf.result
    nodeid = str(r.get("nodeid", ""))
    view = TestView(
        nodeid=nodeid,
        anchor="t-" + tf.folder.rsplit("/", 1)[-1],
        outcome=str(r.get("outcome", "")),
        duration_s=float(r.get("duration_s", 0.0)),
        metrics=dict(r.get("metrics", {})),
        message=str(r.get("message", "")),
        verdict=tf.verdict,
        clusters=tf.clusters,
        rule=Rule.from_dict(r.get("rule")),
    )
    events = [e for _, e in tf.events]
    h = tf.history
    origin, end = span(h, events)

    def s(t_ns: int) -> float:
        return round((t_ns - origin) / 1e9, 4)

    view.span_s = s(end)
    view.events = [
        EventRow(s(e.t_ns), ci, e.action, e.node, e.detail) for ci, e in tf.events[:MAX_ROWS]
    ]
    view.schedule = [Step(**st).describe() for st in (tf.schedule or {}).get("steps", [])]
    view.logs = [LogTail(name, href, tail(tf.log_tail.get(href, ""))) for name, href in tf.logs]
    windows = fault_windows(events, end)
    details = {(e.t_ns, e.action, e.node): e.detail for e in events}
    for w in windows:
        detail = details.get((w.start_ns, w.action, w.node), "")
        label = f"{w.action} {w.node}" + (f" ({detail})" if detail else "")
        view.bands.append(Band(s(w.start_ns), s(w.end_ns), label, w.closed))
    hist = h if h is not None else History()
    for w in windows[:MAX_PHASED]:
        p = failover_phases(hist, events, w.start_ns, slots_of_node(tf.clusters, w.node))
        row = PhaseRow(
            f"{w.action} {w.node}",
            s(w.start_ns),
            p.first_error_ms,
            p.fail_flag_ms,
            p.promoted_ms,
            p.first_ok_ms,
        )
        view.phases.append(row)
        view.markers += phase_markers(row)
    if h is None:
        return view
    view.history_href = f"{tf.folder}/history.jsonl"
    view.buckets = buckets(h, origin, end)
    for name, u in availability(h, shard_namer(tf.clusters)).items():
        outages = [(s(o.start_ns), s(o.end_ns), o.closed) for o in u.windows]
        view.shards.append(ShardRow(name, u.writes, u.failed_writes, round(u.total_ms, 1), outages))
    if any(o.kind == "add" for o in h.ops):
        view.writes, view.writes_total = write_rows(h, s)
    return view


def phase_markers(row: PhaseRow) -> list[Marker]:
    out = [Marker(row.t_s, f"fault: {row.fault}")]
    for label, v in (
        ("first client error", row.first_error_ms),
        ("FAIL flag", row.fail_flag_ms),
        ("promoted", row.promoted_ms),
        ("first acknowledged write", row.first_ok_ms),
    ):
        if v is not None:
            out.append(Marker(round(row.t_s + v / 1000, 4), f"{label} +{v:.0f} ms"))
    return out


def write_rows(h: History, s: Callable[[int], float]) -> tuple[list[WriteRow], int]:
    """Lost, unexpected and failed-but-present writes of a set workload (with the
    standard replication grace), at most :data:`MAX_ROWS`, and how many there are."""
    r = check_set(h, examples=MAX_ROWS, grace_ns=int(REPLICATION_GRACE_MS * 1e6))
    rows = [
        WriteRow("lost", e.key, repr(e.value), s(e.ack_ns), e.node or "", e.cls)
        for summary in r.lost.values()
        for e in summary.examples
    ]
    rows += [WriteRow("unexpected", k, repr(v), None, "", "") for k, v in r.unexpected]
    by_id = {o.id: o for o in h.ops} if r.failed_present else {}
    for op_id, k, v in r.failed_present:
        o = by_id.get(op_id)
        rows.append(
            WriteRow(
                "failed but present",
                k,
                repr(v),
                None,
                (o.node or "") if o else "",
                (o.error or "") if o else "",
            )
        )
    total = r.lost_count + r.unexpected_count + r.failed_present_count
    return rows[:MAX_ROWS], total


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


#: metrics shown in the verdict table when a test has them (the rest in its section)
KEY_METRICS = (
    "failover_ms",
    "lost_acked_writes",
    "lost_in_window",
    "unexpected",
    "unknown_writes",
    "unavailable_ms",
    "fail_flag_ms",
)


@dataclass
class RunView:
    title: str
    header: list[tuple[str, str]]
    totals: dict[str, int]
    tests: list[TestView]
    upgrades: list[RehearsalView] = field(default_factory=list)
    regressions: list[ScenarioRow] = field(default_factory=list)


def key_metrics(metrics: dict[str, Any], limit: int = 5) -> list[tuple[str, Any]]:
    chosen = [(k, metrics[k]) for k in KEY_METRICS if k in metrics]
    rest = [(k, v) for k, v in sorted(metrics.items()) if k not in KEY_METRICS]
    return (chosen + rest)[:limit]


def run_header(summary: dict[str, Any]) -> list[tuple[str, str]]:
    impl = summary.get("implementation") or {}
    nt = summary.get("node_timeout_ms")
    rows = [
        ("implementation", f"{impl.get('name', '?')} ({impl.get('flavor', '?')})"),
        ("version", str(impl.get("version", "?"))),
        ("binary", str(impl.get("binary") or "-")),
        ("backend", str(summary.get("backend", "?"))),
        ("seed", str(summary.get("seed", "?"))),
        ("replay", str(summary.get("command", "-"))),
        ("node timeout", f"{nt} ms" if nt is not None else "?"),
        ("workload engine", str(summary.get("workload_engine", "?"))),
        ("started", str(summary.get("started", "?"))),
        ("finished", str(summary.get("finished", "?"))),
        ("duration", f"{summary.get('duration_s', '?')} s"),
        ("harness version", str(summary.get("harness_version", "?"))),
        ("exit status", str(summary.get("exit_status", "?"))),
    ]
    if summary.get("tls") or summary.get("auth") not in (None, "none"):
        rows.append(("security", f"auth {summary.get('auth')}, tls {summary.get('tls')}"))
    return rows


def run_view(summary: dict[str, Any], tests: Iterable[TestFiles]) -> RunView:
    impl = summary.get("implementation") or {}
    title = f"{impl.get('name', 'run')} {impl.get('version', '')} on {summary.get('backend', '?')}"
    files = list(tests)
    views = [test_view(t) for t in files]
    upgrades = upgrade_views(
        summary,
        [t.anchor for t in views],
        {tf.folder.rsplit("/", 1)[-1]: tf.upgrade_files for tf in files},
    )
    return RunView(
        title.strip(),
        run_header(summary),
        dict(summary.get("totals", {})),
        views,
        upgrades,
        scenario_rows(summary, [t.anchor for t in views]),
    )
