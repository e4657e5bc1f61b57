"""The report page's upgrade rehearsals, from a ``summary.json`` made of the real
dataclasses' JSON (``Rehearsal.to_json``): a safe upgrade whose rollback fails at a step
(the rest skipped, a check failed, a risk named, a write lost), as a timeline of steps
with the checks after each; an older summary without upgrades renders as before."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from harness.checkers import check_set
from harness.history import History, Op
from harness.htmlreport import build
from harness.htmlreport.figures import upgrade_timeline
from harness.htmlreport.load import load_run
from harness.htmlreport.model import run_view
from harness.htmlreport.upgrades import CHECK_NAMES, rehearsal_view, upgrade_views
from harness.report import safe_name
from harness.upgrade.checks import Check
from harness.upgrade.plan import Shard, make_plan
from harness.upgrade.rehearse import Rehearsal, StepRecord
from harness.upgrade.risks import Risk

MS = 1_000_000
T0 = 50_000 * MS
TEST = "suites/upgrade/test_rolling_upgrade.py::test_rollback_outcome_is_explained[in-place]"
OLD, NEW = "redis 7.0.15", "valkey 8.1.8"
SHARDS = [Shard("n0", ("n3",)), Shard("n1", ("n4",)), Shard("n2", ("n5",))]
SYNC_DETAIL = "replicas-synced: n0 of n3: link down, offset -1 below 48213 (after 30.0 s)"
EVIDENCE = "1:S 01 Dec 2026 17:00:03.120 # Can't handle RDB format version 11"


def all_ok(node: str) -> list[Check]:
    return [
        Check("coverage-and-agreement", "ok", "16384 slots covered, 6 nodes agree", 41.0),
        Check("one-primary-per-shard", "ok", "3 shards, one primary each", 3.2),
        Check("replicas-synced", "ok", "3 replicas up and caught up", 12.5),
        Check("versions", "ok", f"{node} 8.1.8"),
        Check("cluster-check", "unknown", "no cluster tool for this server here"),
        Check("restart", "ok", f"{node} back in its role", 812.0),
    ]


def record(step_i: int, plan_steps: Any, start_ms: float, ms: float, **kw: Any) -> StepRecord:
    step = plan_steps[step_i]
    return StepRecord(step, T0 + int(start_ms * MS), T0 + int((start_ms + ms) * MS), **kw)


def writes(lost: int) -> History:
    """A set workload: 200 acknowledged adds, the last ``lost`` missing from the read."""
    h = History()
    for i in range(200):
        t = T0 + i * 5 * MS
        h.ops.append(Op(i, i % 4, "add", "k", 0, i, t, t + MS, "ok", "127.0.0.1:7000"))
    end = T0 + 2000 * MS
    h.ops.append(Op(999, 0, "final-read", "k", 0, list(range(200 - lost)), end, end + MS, "ok"))
    return h


def upgrade_json() -> dict[str, Any]:
    """Up: every step ok (a failover makes shard 0 unavailable for a while). Back: the
    demoted primary cannot resync from the newer one; the rest is skipped."""
    plan = make_plan("in-place", SHARDS, source=OLD, target=NEW, replica_can_sync_from_target=False)
    up = Rehearsal(plan, "local", origin_ns=T0)
    t = 0.0
    for i, step in enumerate(plan.steps):
        rec = record(i, plan.steps, t, 900.0, result=f"{step.node} ok", checks=all_ok(step.node))
        if step.action == "failover":
            rec.unavailable_ms = {"slots from 0": 612.4, "slots from 5461": 3.1}
            rec.client_errors = {"MOVED 100 127.0.0.1:7003": 14, "CLUSTERDOWN": 3, "timeout": 1}
        up.records.append(rec)
        t += 1000.0
    up.loss = check_set(writes(0))
    up.reasons = ["every step completed and checked; 200 acknowledged writes, none lost"]

    back_plan = make_plan("in-place", SHARDS, source=NEW, target=OLD)
    back = Rehearsal(back_plan, "local", origin_ns=T0)
    steps = back_plan.steps
    failed_checks = [*all_ok("n0")[:2], Check("replicas-synced", "fail", SYNC_DETAIL, 30_000.0)]
    back.records = [
        record(0, steps, 0, 850.0, result="n3 ok", checks=all_ok("n3")),
        record(1, steps, 900, 1200.0, result="n3 took over", checks=all_ok("n3")[:5]),
        record(
            2,
            steps,
            2200,
            30_050.0,
            status="failed",
            error="StepFailed: n0 is no synced replica of n3 after 30 s",
            checks=failed_checks,
            client_errors={f"error {k}": 10 - k for k in range(5)},
        ),
        *[StepRecord(s, T0 + 32_300 * MS) for s in steps[3:]],
    ]
    for r in back.records[3:]:
        r.status = "skipped"
    back.risks = [
        Risk("rdb-version-refused", "unsafe", "n0", EVIDENCE, "upgrade it next", step=3),
        Risk("replica-behind", "warning", "n5", "offset 10 behind", "wait for the sync"),
    ]
    back.loss = check_set(writes(1))
    back.verdict = "unsafe"
    back.reasons = [
        "step 3. shard 0: upgrade-replica n0 failed: StepFailed: n0 is no synced replica",
        "1 acknowledged writes lost outside failover windows (of 200 acknowledged)",
        f"at the end: replicas-synced: fail ({SYNC_DETAIL})",
    ]
    up.rollback = back
    return up.to_json()


def summary(upgrades: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "implementation": {"name": "redis-7.0", "flavor": "redis", "version": "7.0.15"},
        "backend": "local",
        "totals": {"passed": 1},
        "tests": [{"nodeid": TEST, "outcome": "passed", "duration_s": 61.0, "metrics": {}}],
    }
    if upgrades is not None:
        out["upgrades"] = upgrades
    return out


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    data = upgrade_json()
    (tmp_path / "summary.json").write_text(json.dumps(summary([{"test": TEST, **data}])))
    art = tmp_path / "artifacts" / safe_name(TEST)
    art.mkdir(parents=True)
    (art / "upgrade-in-place.json").write_text(json.dumps(data, indent=1))
    return tmp_path


def test_page_shows_each_rehearsal_as_steps_with_their_checks(report_dir: Path) -> None:
    html = build(report_dir).read_text()
    assert "<h2>Upgrade rehearsals</h2>" in html
    assert f"in-place: {OLD} → {NEW}" in html and f"Rollback: in-place: {NEW} → {OLD}" in html
    assert '<span class="verdict safe">SAFE</span>' in html
    assert '<span class="verdict unsafe">UNSAFE</span>' in html
    assert html.index("verdict safe") < html.index("verdict unsafe")  # the rollback nested
    assert "cannot take a full sync from a valkey 8.1.8 primary (RDB" in html  # a plan note
    assert f'class="check fail" title="{SYNC_DETAIL} (30000.0 ms)">fail</td>' in html
    assert str(escape(EVIDENCE)) in html and "upgrade it next" in html
    assert "StepFailed: n0 is no synced replica of n3 after 30 s" in html
    assert html.count("not run: an earlier step failed") == 6
    assert "lost: none;" in html and "lost: 1 before-faults;" in html
    assert "1 lost outside failover windows" in html
    assert 'title="slots from 0: 612 ms; slots from 5461: 3 ms">612</td>' in html
    assert "14× <code>MOVED 100 127.0.0.1:7003</code>" in html
    assert "+ 2 other errors, 13 times" in html  # beyond the top three of the failed step
    art = f"artifacts/{safe_name(TEST)}"
    assert f'<a href="{art}/upgrade-in-place.json">' in html
    assert f'<a href="#t-{safe_name(TEST)}">{TEST}</a>' in html
    figs = dict(
        re.findall(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', html)
    )
    assert {"u-0", "u-0-rollback"} <= set(figs)
    names = [tr["name"] for tr in json.loads(figs["u-0-rollback"])["data"]]
    assert names == ["ok", "failed", "skipped", "checks"]


def test_model_of_a_rehearsal() -> None:
    (view,) = upgrade_views(summary([{"test": TEST, **upgrade_json()}]))
    assert (view.verdict, view.kind, view.test_anchor) == ("safe", "in-place", None)
    assert view.check_names == list(CHECK_NAMES) and len(view.steps) == 9
    failover = view.steps[1]
    assert failover.max_unavailable_ms == 612.4 and failover.start_s == 1.0
    assert failover.client_errors[0] == ("MOVED 100 127.0.0.1:7003", 14)
    back = view.rollback
    assert back is not None and back.anchor == "u-0-rollback" and back.verdict == "unsafe"
    assert back.counts() == {"ok": 2, "failed": 1, "skipped": 6}
    (bad,) = back.steps[2].failed_checks()
    assert bad.detail == SYNC_DETAIL and "restart" not in back.steps[2].checks
    assert back.risks[0].step == 3 and back.risks[1].step is None
    assert back.writes is not None and back.writes.lost_outside_windows == 1
    assert len(back.writes.examples) == 1


def test_figure_is_one_bar_per_step_and_a_marker_per_checked_step() -> None:
    view = rehearsal_view(upgrade_json(), "u-0").rollback
    assert view is not None
    fig = upgrade_timeline(view)
    traces = {t.name: t for t in fig.data}
    ok, failed = traces["ok"], traces["failed"]
    assert list(ok.base) == [0.0, 0.9] and list(ok.x) == [0.85, 1.2]
    assert list(failed.x) == [30.05] and "no synced replica" in failed.hovertext[0]
    assert len(traces["skipped"].y) == 6
    assert list(traces["checks"].marker.symbol) == ["circle", "circle", "x"]
    assert "replicas-synced: fail" in traces["checks"].hovertext[2]
    labels = list(fig.layout.yaxis.categoryarray)
    assert labels[0] == "1. upgrade-replica n3" and len(labels) == 9


def test_summary_without_upgrades_has_no_section(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps(summary(None)))
    html = build(tmp_path).read_text()
    assert "Upgrade rehearsals" not in html and 'class="verdict ' not in html
    assert TEST in html


def test_a_rehearsal_of_another_shape_never_breaks_the_page(tmp_path: Path) -> None:
    odd: list[Any] = [
        {"test": TEST},
        "not a rehearsal",
        {"plan": None, "steps": [{"index": "x", "checks": [{"status": "ok"}], "start_ms": "?"}]},
        {"verdict": "SAFE", "writes": {"lost": []}, "rollback": {"rollback": "no"}},
        {"steps": [{"unavailable_ms": {"s": float("nan")}, "client_errors": {"e": None}}]},
    ]
    (tmp_path / "summary.json").write_text(json.dumps(summary(odd)))
    html = build(tmp_path).read_text()
    assert html.count('<div class="rehearsal') == 5  # four rehearsals, one rollback
    assert "NO VERDICT" in html
    run = load_run(tmp_path)
    views = run_view(run.summary, run.tests).upgrades
    assert [v.verdict for v in views] == ["", "", "safe", ""]
    assert views[0].test_anchor == f"t-{safe_name(TEST)}"


BROWSER = ("/usr/bin/chromium", "/usr/bin/chromedriver")


@pytest.mark.skipif(
    not all(Path(p).exists() for p in BROWSER), reason="Debian's chromium and chromium-driver"
)
def test_upgrade_figure_draws_in_a_browser(report_dir: Path) -> None:
    """Cheap (a made-up page, no server): the step bars are drawn, without an error."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    build(report_dir)
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1400"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(BROWSER[1]), options=opts)
    bars = "return document.querySelectorAll('#plot-u-0-rollback .bars path').length"
    try:
        driver.get((report_dir / "index.html").as_uri())
        driver.execute_script("document.getElementById('plot-u-0-rollback').scrollIntoView()")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(bars))
        drawn = driver.execute_script(bars)
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert drawn == 3, drawn  # the steps that ran: two ok, one failed
    assert not errors, errors
