"""The HTML report's page model and page, on a made-up report directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.history import Event, History, Op
from harness.htmlreport import build
from harness.htmlreport.load import load_run
from harness.htmlreport.model import (
    MAX_BUCKETS,
    bucket_width_ms,
    buckets,
    key_metrics,
    percentile,
    run_view,
    tail,
)
from harness.report import replay_command, safe_name

MS = 1_000_000
T0 = 10_000 * MS  # the monotonic clock's origin of the made-up run
KILLED, REPLICA = "127.0.0.1:7000", "127.0.0.1:7003"
SHAPE = {
    "index": 0,
    "describe": "3x1 redis 7.2.4 on local",
    "node_timeout_ms": 1000,
    "owned": True,
    "nodes": [
        {"name": f"n{i}", "addr": f"127.0.0.1:{7000 + i}", "state": "running"} for i in range(6)
    ],
    "shards": [
        {"name": "shard0", "slots": [0, 5460], "master": KILLED, "replicas": [REPLICA]},
        {"name": "shard1", "slots": [5461, 10922], "master": "127.0.0.1:7001", "replicas": []},
        {"name": "shard2", "slots": [10923, 16383], "master": "127.0.0.1:7002", "replicas": []},
    ],
    "final": [{"addr": REPLICA, "slots": [[0, 5460]]}],
}
KILL_TEST = "suites/chaos/test_consistency.py::test_kill_master_under_load"
PLAIN_TEST = "suites/conformance/test_topology.py::test_slots_covered"


def made_up_history() -> History:
    """4 s of adds, one every 10 ms; the master of shard0 is killed at 1 s, its slots
    fail until it is promoted at 2.5 s; one add acknowledged by the killed master at
    1.01 s is missing from the final read."""
    h = History()
    values: dict[str, list[int]] = {"k0": [], "k1": []}
    for i in range(400):
        t = T0 + i * 10 * MS
        key, slot = ("k0", 100) if i % 2 == 0 else ("k1", 8000)
        down = key == "k0" and 1000 * MS < t - T0 < 2500 * MS
        op = Op(i, i % 4, "add", key, slot, i, t, t + 2 * MS, "ok", KILLED if key == "k0" else "x")
        if down:
            op.outcome, op.error = "fail", "CLUSTERDOWN"
        if i == 101:
            op.outcome, op.key, op.slot, op.node = "ok", "k0", 100, KILLED
        h.ops.append(op)
        if op.outcome == "ok" and i != 101:
            values[op.key].append(i)
    end = T0 + 4100 * MS
    for n, (k, v) in enumerate(values.items()):
        h.ops.append(Op(1000 + n, 0, "final-read", k, 0, v, end, end + MS, "ok"))
    h.events = [
        Event(T0 - 5 * MS, "ready", "cluster", "900 ms"),
        Event(T0 + 1000 * MS, "kill", KILLED),
        Event(T0 + 2200 * MS, "fail-flag", KILLED, "1200 ms"),
        Event(T0 + 2500 * MS, "promoted", REPLICA, "1500 ms"),
        Event(T0 + 3000 * MS, "start", KILLED),
    ]
    return h


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    summary = {
        "schema": "redis-cluster-harness/summary/v1",
        "implementation": {
            "name": "redis",
            "flavor": "redis",
            "version": "7.2.4",
            "binary": "/usr/bin/redis-server",
        },
        "backend": "local",
        "seed": 42,
        "node_timeout_ms": 1000,
        "command": replay_command(["suites/chaos", "-k", "kill"], 42),
        "harness_version": "0.1.0",
        "duration_s": 12.5,
        "totals": {"failed": 1, "passed": 1},
        "tests": [
            {
                "nodeid": KILL_TEST,
                "outcome": "failed",
                "duration_s": 9.1,
                "message": "verdict invalid",
                "metrics": {"failover_ms": 1500.0, "bringup_ms": 900},
            },
            {
                "nodeid": PLAIN_TEST,
                "outcome": "xfailed",
                "duration_s": 1.2,
                "message": "known server issue redis#1234",
                "metrics": {},
            },
        ],
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    art = tmp_path / "artifacts" / safe_name(KILL_TEST)
    h = made_up_history()
    h.write_jsonl(art / "history.jsonl")
    (art / "timeline.jsonl").write_text(
        "".join(json.dumps({"cluster": 0, **e.to_json()}) + "\n" for e in h.events)
    )
    (art / "clusters.json").write_text(json.dumps([SHAPE]))
    (art / "logs").mkdir()
    lines = [f"1:M 01 Dec 2026 17:00:{i % 60:02d}.000 * line {i}" for i in range(100)]
    (art / "logs" / "cluster0-n0-7000.log").write_text("\n".join(lines) + "\n")
    (art / "schedule.json").write_text(
        json.dumps(
            {
                "seed": 42,
                "steps": [
                    {
                        "fault": "kill",
                        "target": -1,
                        "wait_before_s": 1.0,
                        "hold_s": 2.0,
                        "detail": "",
                    }
                ],
            }
        )
    )
    (art / "verdict.txt").write_text("[set: invalid] LOST 1\n")
    plain = tmp_path / "artifacts" / safe_name(PLAIN_TEST)
    plain.mkdir(parents=True)
    (plain / "timeline.jsonl").write_text(
        json.dumps({"cluster": 0, **Event(T0, "ready", "cluster").to_json()}) + "\n"
    )
    (plain / "clusters.json").write_text(json.dumps([SHAPE]))
    return tmp_path


def test_bucket_width_keeps_10ms_detail_for_a_minute() -> None:
    assert bucket_width_ms(80_000 * MS) == 10
    assert bucket_width_ms(81_000 * MS) == 20
    assert 3_600_000 / bucket_width_ms(3_600_000 * MS) <= MAX_BUCKETS


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([7.0], 0.99) == 7


def test_buckets_count_every_op_by_outcome() -> None:
    h = made_up_history()
    b = buckets(h, T0, T0 + 4000 * MS)
    assert b.width_ms == 10
    adds = [o for o in h.ops if o.kind == "add"]
    assert sum(b.ok) + sum(b.fail) + sum(b.info) == len(adds)  # final reads left out
    assert sum(b.fail) == sum(o.outcome == "fail" for o in adds)
    assert b.p50_ms[0] == 2.0 and b.p99_ms[0] == 2.0


def test_model_of_a_killed_master() -> None:
    run = load_run_from(made_up_history())
    t = run.tests[0]
    assert [b.label for b in t.bands] == [f"kill {KILLED}"]
    assert t.bands[0].start_s == pytest.approx(1.005) and t.bands[0].end_s == pytest.approx(3.005)
    (p,) = t.phases
    assert p.fail_flag_ms == pytest.approx(1200) and p.promoted_ms == pytest.approx(1500)
    assert p.first_error_ms is not None and p.first_ok_ms is not None
    assert p.first_error_ms < p.promoted_ms < p.first_ok_ms
    labels = [m.label for m in t.markers]
    assert labels[0] == f"fault: kill {KILLED}" and "promoted +1500 ms" in labels
    by_shard = {s.shard.split()[0]: s for s in t.shards}
    assert by_shard["shard0"].failed > 0 and by_shard["shard0"].outages
    assert "shard1" in by_shard and not by_shard["shard1"].outages
    (lost,) = t.writes
    assert (lost.what, lost.key, lost.value, lost.node) == ("lost", "k0", "101", KILLED)
    assert lost.cls == "in-window" and t.writes_total == 1


def load_run_from(h: History) -> object:
    from harness.htmlreport.load import TestFiles

    tf = TestFiles(
        {"nodeid": KILL_TEST, "outcome": "failed"},
        "artifacts/x",
        h,
        [(0, e) for e in h.events],
        [SHAPE],
    )
    return run_view({}, [tf])


def test_page_holds_every_section(report_dir: Path) -> None:
    page = build(report_dir)
    html = page.read_text()
    assert page == report_dir / "index.html" and (report_dir / "plotly.min.js").is_file()
    for text in (
        "redis (redis)",
        "7.2.4",
        "/usr/bin/redis-server",
        "python -m pytest suites/chaos -k kill --seed 42",
        "1000 ms",
        "0.1.0",
    ):
        assert text in html, text
    assert "known server issue redis#1234" in html and "verdict invalid" in html
    assert "failover_ms=1500.0" in html
    # the figure: ops, latency, outages, events, the fault band and phase lines
    figs = re.findall(r'<script type="application/json" id="fig-[^"]+">(.*?)</script>', html, re.S)
    assert len(figs) == 2  # the test without a workload has its events timeline
    fig = json.loads(figs[0])
    names = [tr.get("name") for tr in fig["data"]]
    assert {"ok", "fail", "info", "p50", "p99", "events", "failover phases"} <= set(names)
    rects = [s for s in fig["layout"]["shapes"] if s["type"] == "rect"]
    assert rects[0]["label"]["text"] == f"kill {KILLED}"
    assert sum(s["type"] == "line" for s in fig["layout"]["shapes"]) == 5
    # the tables and the logs
    for text in (
        "Failover phases",
        "Write availability per shard",
        "Lost and unexpected writes",
        "in-window",
        "after 1.00s: kill a current master for 2.00s",
        "LOST 1",
    ):
        assert text in html, text
    assert 'href="artifacts/' + safe_name(KILL_TEST) + '/history.jsonl"' in html
    assert 'href="artifacts/' + safe_name(KILL_TEST) + '/logs/cluster0-n0-7000.log"' in html
    assert "line 99" in html and "line 59" not in html  # the tail only
    assert not re.search(r"""(src|href)=["']?https?://""", html)


def test_test_without_workload_gets_its_section(report_dir: Path) -> None:
    run = load_run(report_dir)
    view = run_view(run.summary, run.tests)
    plain = view.tests[1]
    assert plain.buckets is None and [e.action for e in plain.events] == ["ready"]
    assert plain.outcome == "xfailed" and plain.clusters[0]["shards"]


def test_not_a_report_dir(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no summary\.json"):
        build(tmp_path)


def test_helpers() -> None:
    assert key_metrics({"zz": 1, "failover_ms": 2}) == [("failover_ms", 2), ("zz", 1)]
    assert tail("a\nb\nc\n", 2) == "b\nc"
    assert replay_command(["x", "--seed=3"], 9) == "python -m pytest x --seed=3"


def test_test_without_files_gets_its_section(tmp_path: Path) -> None:
    summary = {
        "tests": [{"nodeid": "t.py::test_skipped", "outcome": "skipped", "message": "no TLS"}]
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    html = build(tmp_path).read_text()
    assert 'id="t-t.py_test_skipped"' in html and "no TLS" in html
    assert "nothing was recorded on a cluster timeline" in html


def test_cli_rebuilds_a_page_and_refuses_a_non_report_dir(
    report_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    assert main(["report-html", str(report_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(report_dir / "index.html")
    assert main(["report-html", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no summary.json" in err[0]


def test_a_minute_under_load_stays_small_at_10ms_detail() -> None:
    """60 s at 1000 ops/s with a kill: every op counted, the figure well under 1 MB, so a
    full suite's page stays within a few MB."""
    from harness.htmlreport.figures import timeline_json
    from harness.htmlreport.load import TestFiles
    from harness.htmlreport.model import test_view

    h = History()
    for i in range(60_000):
        t = T0 + i * MS
        out = "fail" if i % 97 == 0 else "info" if i % 389 == 0 else "ok"
        h.ops.append(Op(i, i % 4, "write", f"k{i % 100}", i % 16384, i, t, t + (i % 7) * MS, out))
    h.events = [Event(T0 + 20_000 * MS, "kill", KILLED), Event(T0 + 23_000 * MS, "start", KILLED)]
    view = test_view(
        TestFiles({"nodeid": KILL_TEST}, "artifacts/x", h, [(0, e) for e in h.events], [SHAPE])
    )
    assert view.buckets is not None and view.buckets.width_ms == 10
    b = view.buckets
    assert sum(b.ok) + sum(b.fail) + sum(b.info) == len(h.ops)
    size = len(timeline_json(view))
    assert size < 400_000, size
