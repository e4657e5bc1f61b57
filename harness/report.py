"""Run results: per-test metrics and ``summary.json``.

Metrics travel as pytest ``user_properties`` named ``metric:<name>``. That one channel
feeds JUnit XML properties, the terminal table and ``summary.json`` alike, and survives
pytest-xdist (workers ship user_properties to the controller).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import metricinfo

METRIC_PREFIX = "metric:"
SCHEMA = "redis-cluster-harness/summary/v1"
Value = float | int | str


@dataclass
class TestResult:
    nodeid: str
    outcome: str = "passed"  # passed | failed | skipped | error | xfailed | xpassed
    duration_s: float = 0.0
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    message: str = ""
    #: the rule the test states (harness.rules.Rule.as_dict), when it states one
    rule: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 3),
            "metrics": self.metrics,
        }
        if self.message:
            out["message"] = self.message
        if self.rule:
            out["rule"] = self.rule
        return out


def metrics_from_properties(props: Iterable[tuple[str, object]]) -> dict[str, Any]:
    return {k[len(METRIC_PREFIX) :]: v for k, v in props if k.startswith(METRIC_PREFIX)}


def build_summary(meta: Mapping[str, Any], results: Iterable[TestResult]) -> dict[str, Any]:
    tests = [r.as_dict() for r in results]
    totals: dict[str, int] = {}
    for t in tests:
        totals[t["outcome"]] = totals.get(t["outcome"], 0) + 1
    return {"schema": SCHEMA, **meta, "totals": totals, "tests": tests}


def write_summary(report_dir: Path, summary: Mapping[str, Any]) -> Path:
    """Write atomically, so a reader never sees half a file."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "summary.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def metrics_table(results: Iterable[TestResult], width: int = 100) -> list[str]:
    """Lines for the terminal, at most ``width`` wide: a test per line (outcome, duration)
    and under it only the metrics it has, the ones that matter first
    (:func:`harness.metricinfo.priority`), at most two lines of them. Every figure stays in
    summary.json and the JUnit properties."""
    rows = [r for r in results if r.metrics]
    if not rows:
        return []
    tail_w = len("outcome   duration")
    name_w = min(max(len(r.nodeid) for r in rows), width - tail_w - 2)
    lines = [f"{'test':<{name_w}}  {'outcome':<8}  duration".rstrip()]
    for r in rows:
        name = short_id(r.nodeid, name_w)
        lines.append(f"{name:<{name_w}}  {r.outcome:<8}{r.duration_s:>8.1f} s")
        lines += _wrap([f"{k} {fmt_value(r.metrics[k])}" for k in _shown(r.metrics)], width)
    return lines


def _shown(metrics: Mapping[str, object]) -> list[str]:
    """The names worth a look: a 0 only when it is a timing or a headline count."""
    return sorted(
        (
            k
            for k, v in metrics.items()
            if v != 0 or metricinfo.is_timing(k) or k in metricinfo.HEADLINE_COUNTS
        ),
        key=metricinfo.priority,
    )


def _wrap(items: list[str], width: int, indent: str = "    ", most: int = 2) -> list[str]:
    """``items`` two spaces apart in lines of ``width``; past ``most`` lines, a count."""
    room = width - len(indent)
    lines: list[list[str]] = []
    for item in (i[:room] for i in items):
        if lines and len("  ".join([*lines[-1], item])) <= room:
            lines[-1].append(item)
        else:
            lines.append([item])
    if len(lines) > most:
        lines = lines[:most]
        left = len(items) - sum(map(len, lines))
        more = f"(+{left} more in summary.json)"
        while lines[-1] and len("  ".join([*lines[-1], more])) > room:
            lines[-1].pop()
            left += 1
            more = f"(+{left} more in summary.json)"
        lines[-1].append(more)
    return [indent + "  ".join(line) for line in lines]


def fmt_value(v: object) -> str:
    """A metric as people read it: whole numbers plain, others to one decimal (to none
    past 100: milliseconds)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v.is_integer():
            return str(int(v))
        return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def safe_name(nodeid: str) -> str:
    """A test id as a file name: the test's folder under ``artifacts/`` and ``logs/``."""
    return re.sub(r"[^\w.-]+", "_", nodeid)


def replay_command(pytest_args: Iterable[str], seed: int) -> str:
    """The pytest command that replays a run: its own arguments, with its seed pinned."""
    args = list(pytest_args)
    if not any(a == "--seed" or a.startswith("--seed=") for a in args):
        args += ["--seed", str(seed)]
    return shlex.join(["python", "-m", "pytest", *args])


def harness_version() -> str:
    try:
        return metadata.version("redis-cluster-harness")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def short_id(nodeid: str, width: int) -> str:
    """``nodeid`` in at most ``width`` characters: the directory goes first, then the
    file, then the middle of the name (its end has the parameters that tell cases apart)."""
    file, sep, name = nodeid.rpartition("::")
    for text in (nodeid, file.rsplit("/", 1)[-1] + sep + name, name):
        if len(text) <= width:
            return text
    keep = max(width - 1, 2)
    head = keep // 3
    return name[:head] + "…" + name[len(name) - (keep - head) :]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
