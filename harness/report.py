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

METRIC_PREFIX = "metric:"
SCHEMA = "redis-cluster-harness/summary/v1"


@dataclass
class TestResult:
    nodeid: str
    outcome: str = "passed"  # passed | failed | skipped | error | xfailed | xpassed
    duration_s: float = 0.0
    metrics: dict[str, float | int | str] = field(default_factory=dict)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 3),
            "metrics": self.metrics,
        }
        if self.message:
            out["message"] = self.message
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


def metrics_table(results: Iterable[TestResult]) -> list[str]:
    """Lines of a plain-text table: one row per test with metrics."""
    rows = [(r.nodeid, r.outcome, r.metrics) for r in results if r.metrics]
    if not rows:
        return []
    names = sorted({k for _, _, m in rows for k in m})
    header = ["test", "outcome", *names]
    body = [[nodeid, outcome, *(_fmt(m.get(n)) for n in names)] for nodeid, outcome, m in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in body]
    return lines


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
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


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
