"""The report page of a real run: ``python -m harness run`` of one chaos test (a master
killed under load) ends by naming ``index.html``, which shows that test's timeline with
the kill as a band and the failover phases as markers, and opens offline."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from sandbox import Sandbox, outcome

from harness.report import safe_name

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not on PATH"
)

TIMEOUT = 120  # one failover under load: about 10 s
TEST = "suites/chaos/test_consistency.py::test_kill_master_under_load"


def test_page_of_a_killed_master(sandbox: Sandbox) -> None:
    argv = ["-m", "harness", "run", "--suite", "chaos", "--report-dir", "out"]
    res = sandbox.run([*argv, "--", "-k", "test_kill_master_under_load"], timeout=TIMEOUT)
    assert res.returncode == 0, outcome(res)
    out = sandbox.dir / "out"
    page = out / "index.html"
    assert res.stdout.rstrip().splitlines()[-1] == f"report: {page}", outcome(res)
    html = page.read_text()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # the library, once, beside it
    assert len(html) < 1_000_000, len(html)  # one test's page: data bucketed
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["tests"][0]["nodeid"] == TEST and summary["tests"][0]["outcome"] == "passed"
    for text in (TEST, summary["command"], f"seed</th><td>{summary['seed']}", "Failover phases"):
        assert text in html, text

    (fig_json,) = re.findall(r'<script type="application/json" id="fig-[^"]+">(.*?)</script>', html)
    fig = json.loads(fig_json)
    traces = {t["name"]: t for t in fig["data"]}
    assert sum(traces["ok"]["y"]) > 500 and "fail" in traces and "p99" in traces
    bands = [s for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    assert len(bands) == 1 and bands[0]["label"]["text"].startswith("kill 127.0.0.1:")
    phases = traces["failover phases"]["text"]
    assert phases[0].startswith("fault: kill") and len(phases) == 5, phases  # every phase seen
    promoted = next(p for p in phases if p.startswith("promoted +"))
    metrics = summary["tests"][0]["metrics"]
    shown = float(promoted.removeprefix("promoted +").removesuffix(" ms"))
    assert abs(shown - metrics["promoted_ms"]) <= 1, (promoted, metrics)  # the checker's figure

    art = f"artifacts/{safe_name(TEST)}"
    assert f'href="{art}/history.jsonl"' in html
    logs = sorted((out / art / "logs").glob("*.log"))
    assert len(logs) == 6 and all(f'href="{art}/logs/{p.name}"' in html for p in logs)
