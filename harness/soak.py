"""A false-alarm measurement: the suites N times against one implementation, a new seed
each time, aggregated per test.

On a correct server every failure is a harness bug or a server bug with a name (a known
issue of its profile, reported as xfailed); a soak shows which, with the seed that
replays it. This module is the pure part: one :class:`RunInfo` per finished ``run``
(its ``summary.json``, see :mod:`harness.report`) in, ``soak.json`` and a plain text
report out. :mod:`harness.soakrun` starts the runs and the CPU hog.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "redis-cluster-harness/soak/v1"
#: shown first, in this order; every other numeric metric follows by name
KEY_METRICS = (
    "failover_ms",
    "manual_failover_ms",
    "fail_detect_ms",
    "fail_flag_ms",
    "converge_ms",
    "bringup_ms",
)
FAILED = ("failed", "error")
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped")
KNOWN_PREFIX = "known server issue "  # harness.plugin.reporting's xfail reason
#: pytest's exit statuses after which a run's summary is a verdict on its tests:
#: 0 all passed, 1 some failed. Others (interrupted, internal or usage error, nothing
#: collected, a harness error before pytest) end the soak.
VERDICT_EXITS = (0, 1)
_K_IDENT = re.compile(r"(:?\w|:|\+|-|\.|\[|\]|\\|/)+")  # what pytest's -k takes as a name


@dataclass(frozen=True)
class RunInfo:
    """One finished ``python -m harness run`` of the soak."""

    index: int  # 1-based
    seed: int
    exit_status: int
    duration_s: float
    report_dir: str
    summary: Mapping[str, Any] | None  # None: the run wrote none
    load_1m: float | None = None  # the 1-minute load average when it ended

    @property
    def counts(self) -> bool:
        """Whether its tests count: it ended with a verdict and wrote a summary."""
        return self.summary is not None and self.exit_status in VERDICT_EXITS


@dataclass(frozen=True)
class Seen:
    """One non-pass of a test: which run, which seed, what it said."""

    run: int
    seed: int
    outcome: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TestRecord:
    """A test over the soak's runs."""

    nodeid: str
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[Seen] = field(default_factory=list)  # failed / error: not a known issue
    known: list[Seen] = field(default_factory=list)  # xfailed: a named known issue
    skips: dict[str, int] = field(default_factory=dict)  # reason -> runs
    metrics: dict[str, list[float]] = field(default_factory=dict)

    __test__ = False  # not a pytest test class, despite the name

    def add(self, run: RunInfo, test: Mapping[str, Any]) -> None:
        outcome = str(test.get("outcome", "passed"))
        message = str(test.get("message", ""))
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome in FAILED:
            self.failures.append(Seen(run.index, run.seed, outcome, message))
        elif outcome == "xfailed":
            self.known.append(
                Seen(run.index, run.seed, outcome, message.removeprefix(KNOWN_PREFIX))
            )
        elif outcome == "skipped":
            self.skips[message] = self.skips.get(message, 0) + 1
        for name, value in dict(test.get("metrics", {})).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.metrics.setdefault(name, []).append(float(value))

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "runs": sum(self.outcomes.values()),
            "outcomes": self.outcomes,
            "failures": [s.as_dict() for s in self.failures],
            "known_issues": [s.as_dict() for s in self.known],
            "skips": self.skips,
            "metrics": {n: spread(self.metrics[n]) for n in metric_order(self.metrics)},
        }


def aggregate(runs: Sequence[RunInfo]) -> dict[str, TestRecord]:
    """Per test, in the order tests first appear, over the runs that count."""
    records: dict[str, TestRecord] = {}
    for run in runs:
        if not run.counts:
            continue
        assert run.summary is not None
        for test in run.summary.get("tests", []):
            nodeid = str(test["nodeid"])
            records.setdefault(nodeid, TestRecord(nodeid)).add(run, test)
    return records


def spread(values: Sequence[float]) -> dict[str, float | int]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
    }


def metric_order(names: Iterable[str]) -> list[str]:
    """Key metrics first (:data:`KEY_METRICS`), then the rest by name."""
    rank = {n: i for i, n in enumerate(KEY_METRICS)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def k_name(nodeid: str) -> str:
    """The ``-k`` expression that selects the test: its name with the parameters when
    pytest accepts them as a name, else the function name."""
    name = nodeid.rsplit("::", 1)[-1]
    return name if _K_IDENT.fullmatch(name) else name.split("[", 1)[0]


def replay_command(
    run_args: Sequence[str], pytest_args: Sequence[str], seed: int, nodeid: str
) -> str:
    """The command that runs this one test again with the seed of a run (the last ``-k``
    wins in pytest, so one given to the soak is replaced)."""
    argv = ["python", "-m", "harness", "run", *run_args, "--seed", str(seed)]
    argv += ["--", *pytest_args, "-k", k_name(nodeid)]
    return shlex.join(argv)


def exit_status(runs: Sequence[RunInfo], interrupted: bool = False) -> int:
    """0 when every run counted and nothing failed but known issues; 1 when a test failed
    (or a run said it failed with no failed test); otherwise the first run's status that
    ended the soak; 130 when it was interrupted."""
    if interrupted:
        return 130
    for run in runs:
        if not run.counts:
            return run.exit_status or 1
    if any(r.exit_status != 0 for r in runs):
        return 1
    return 0


def build_soak(
    meta: Mapping[str, Any],
    runs: Sequence[RunInfo],
    run_args: Sequence[str],
    pytest_args: Sequence[str],
    interrupted: bool = False,
) -> dict[str, Any]:
    """``soak.json``: what was run, each run, each test, the verdict."""
    records = aggregate(runs)
    first = next((r.summary for r in runs if r.summary is not None), {})
    tests = [rec.as_dict() for rec in records.values()]
    for rec, test in zip(records.values(), tests, strict=True):
        for f, seen in zip(test["failures"], rec.failures, strict=True):
            f["replay"] = replay_command(run_args, pytest_args, seen.seed, rec.nodeid)
    failures = sum(len(t["failures"]) for t in tests)
    silent = [r.index for r in runs if r.counts and r.exit_status != 0] if not failures else []
    return {
        "schema": SCHEMA,
        **meta,
        "run_args": list(run_args),
        "pytest_args": list(pytest_args),
        "implementation": first.get("implementation"),
        "backend": first.get("backend"),
        "node_timeout_ms": first.get("node_timeout_ms"),
        "interrupted": interrupted,
        "runs": [
            {
                "run": r.index,
                "seed": r.seed,
                "exit_status": r.exit_status,
                "duration_s": round(r.duration_s, 3),
                "counted": r.counts,
                "totals": dict(r.summary.get("totals", {})) if r.summary else {},
                "load_1m": r.load_1m,
                "report_dir": r.report_dir,
            }
            for r in runs
        ],
        "tests": tests,
        "verdict": {
            "failures": failures,
            "known_issues": sum(len(t["known_issues"]) for t in tests),
            "runs_failed_without_a_failed_test": silent,
            "exit_status": exit_status(runs, interrupted),
        },
    }


def render(soak: Mapping[str, Any]) -> list[str]:
    """The plain text report of a ``soak.json`` dict."""
    runs = soak["runs"]
    counted = [r for r in runs if r["counted"]]
    impl = soak.get("implementation") or {}
    hog = soak.get("cpu_hog")
    hog_text = f"{hog['workers']} busy workers ({hog['tool']})" if hog else "none"
    out = [
        f"soak: {len(counted)} of {soak['repeat']} runs counted; "
        f"{impl.get('name', '?')} {impl.get('version', '')} on {soak.get('backend')}, "
        f"node timeout {soak.get('node_timeout_ms')} ms; cpu hog: {hog_text}",
        f"seeds: {' '.join(str(r['seed']) for r in runs)} (soak seed {soak['soak_seed']})",
        "",
    ]
    tests = soak["tests"]
    shown = [o for o in OUTCOMES if o in ("passed", "failed", "xfailed") or _any(tests, o)]
    rows = [[t["nodeid"], *(str(t["outcomes"].get(o, 0)) for o in shown)] for t in tests]
    out += _table(["test", *shown], rows)
    spreads = [
        [name, t["nodeid"], str(s["n"]), *(_num(s[k]) for k in ("min", "median", "max"))]
        for t in tests
        for name, s in t["metrics"].items()
    ]
    rank = {n: i for i, n in enumerate(metric_order({row[0] for row in spreads}))}
    spreads.sort(key=lambda row: rank[row[0]])
    if spreads:
        out += ["", "metric spread over the runs that recorded it"]
        out += _table(["metric", "test", "n", "min", "median", "max"], spreads)
    failures = [(t["nodeid"], f) for t in tests for f in t["failures"]]
    if failures:
        out += ["", f"failures ({len(failures)}), not a known issue: a harness or server bug"]
        for nodeid, f in failures:
            out.append(
                f"  {nodeid}  run {f['run']} seed {f['seed']} {f['outcome']}: {f['message']}"
            )
            out.append(f"    replay: {f['replay']}")
    known = [(t["nodeid"], k) for t in tests for k in t["known_issues"]]
    if known:
        out += ["", f"known server issues ({len(known)}), xfailed"]
        out += [f"  {n}  run {k['run']} seed {k['seed']}: {k['message']}" for n, k in known]
    bad = [r for r in runs if not r["counted"]]
    out += [""] + [
        f"run {r['run']} seed {r['seed']} ended with exit {r['exit_status']} and does not "
        f"count; its output: {r['report_dir']}/output.txt"
        for r in bad
    ]
    verdict = soak["verdict"]
    for index in verdict["runs_failed_without_a_failed_test"]:
        out.append(f"run {index} exited non-zero with no failed test: see its output.txt")
    state = "interrupted; " if soak.get("interrupted") else ""
    out.append(
        f"verdict: {state}{verdict['failures']} failures, {verdict['known_issues']} known "
        f"issues in {len(counted)} runs; exit {verdict['exit_status']}"
    )
    return out


def _any(tests: Sequence[Mapping[str, Any]], outcome: str) -> bool:
    return any(t["outcomes"].get(outcome) for t in tests)


def _num(v: float | int) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [header, ["-" * w for w in widths], *rows]
    return [fmt.format(*row).rstrip() for row in lines]
