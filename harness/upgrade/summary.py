"""A stored rehearsal (``Rehearsal.to_json``, as ``summary.json`` keeps it) in lines of
text: the terminal summary's section, and what ``python -m harness upgrade`` prints last."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

#: the pytest ``user_properties`` key of one rehearsal (its JSON): the channel metrics
#: use, so rehearsals reach ``summary.json`` through pytest-xdist too
PROPERTY = "upgrade"


def upgrades_from(props: Iterable[tuple[str, object]]) -> list[dict[str, Any]]:
    return [json.loads(str(v)) for k, v in props if k == PROPERTY]


def rehearsal_lines(data: dict[str, Any], indent: str = "") -> list[str]:
    plan = data["plan"]
    head = f"{plan['kind']} {plan['source']} -> {plan['target']} ({data['backend']})"
    lines = [f"{indent}{data.get('test', '')} {head}: {str(data['verdict']).upper()}".strip()]
    for s in data["steps"]:
        bad = [c["name"] for c in s["checks"] if c["status"] == "fail"]
        gone = max(s["unavailable_ms"].values(), default=0.0)
        what = (
            "skipped"
            if s["status"] == "skipped"
            else (
                f"{s['status']:6} {s['duration_ms']:7.0f} ms, unavailable {gone:5.0f} ms, "
                + ("checks failed: " + ", ".join(bad) if bad else "checks ok")
            )
        )
        lines.append(f"{indent}  {s['index']:>2}. {s['action']:15} {s['node']:8} {what}")
    lines += [f"{indent}  - {r}" for r in data["reasons"]]
    lines += [
        f"{indent}  risk [{r['severity']}] {r['name']} on {r['node']}: "
        f"{' | '.join(str(r['evidence']).splitlines())[:200]}"
        f" -> {r['advice']}"
        for r in data["risks"]
    ]
    if data.get("rollback"):
        lines.append(f"{indent}  rollback:")
        lines += rehearsal_lines(data["rollback"], indent + "    ")
    return lines
