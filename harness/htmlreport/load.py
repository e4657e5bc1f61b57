"""A report directory read back: ``summary.json`` and, per test, what its artifacts
folder holds (history, timeline, cluster shapes, schedule, verdict, node logs, the names
of its upgrade rehearsals' files)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.history import Event, History
from harness.htmlreport.persist import CLUSTERS, LOGS, TIMELINE
from harness.report import safe_name

#: how much of the end of each node's log is read (the page shows its last lines)
TAIL_BYTES = 16_000


@dataclass
class TestFiles:
    """One test's result (a ``summary.json`` entry) and its files (None: not written)."""

    result: dict[str, Any]
    folder: str  # relative to the report directory
    history: History | None = None
    events: list[tuple[int, Event]] = field(default_factory=list)  # (cluster index, event)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    schedule: dict[str, Any] | None = None
    verdict: str = ""
    logs: list[tuple[str, str]] = field(default_factory=list)  # (file name, relative path)
    log_tail: dict[str, str] = field(default_factory=dict)  # relative path -> its end
    upgrade_files: list[str] = field(default_factory=list)  # upgrade-<plan>.json / .txt


@dataclass
class RunFiles:
    root: Path
    summary: dict[str, Any]
    tests: list[TestFiles]


def load_run(root: Path) -> RunFiles:
    path = root / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no summary.json (not a report directory?)") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc})") from None
    return RunFiles(root, summary, [load_test(root, t) for t in summary.get("tests", [])])


def load_test(root: Path, result: dict[str, Any]) -> TestFiles:
    name = safe_name(str(result.get("nodeid", "")))
    rel = f"artifacts/{name}"
    folder = root / rel
    tf = TestFiles(result, rel)
    if (folder / "history.jsonl").is_file():
        tf.history = History.read_jsonl(folder / "history.jsonl")
    if (folder / TIMELINE).is_file():
        for line in (folder / TIMELINE).read_text().splitlines():
            if line.strip():
                obj = json.loads(line)
                ci = int(obj.pop("cluster", 0))
                obj.pop("type", None)
                tf.events.append((ci, Event(**obj)))
    elif tf.history is not None:  # written before timelines existed: the history's events
        tf.events = [(0, e) for e in tf.history.events]
    if (folder / CLUSTERS).is_file():
        tf.clusters = json.loads((folder / CLUSTERS).read_text())
    if (folder / "schedule.json").is_file():
        tf.schedule = json.loads((folder / "schedule.json").read_text())
    if folder.is_dir():
        tf.upgrade_files = sorted(p.name for p in folder.glob("upgrade-*.*") if p.is_file())
    if (folder / "verdict.txt").is_file():
        tf.verdict = (folder / "verdict.txt").read_text()
    # the test's own logs, else those the plugin keeps for a failed test
    for logdir, relbase in (
        (folder / LOGS, f"{rel}/{LOGS}"),
        (root / "logs" / name, f"logs/{name}"),
    ):
        if logdir.is_dir() and not tf.logs:
            for p in sorted(logdir.glob("*.log")):
                tf.logs.append((p.name, f"{relbase}/{p.name}"))
                with p.open("rb") as f:
                    f.seek(max(0, p.stat().st_size - TAIL_BYTES))
                    tail = f.read().decode(errors="replace")
                tf.log_tail[f"{relbase}/{p.name}"] = tail
    return tf
