"""bench/migration.py runs to its end on tiny settings and reports both movers, and a
SIGTERM mid-run stops it with nothing left behind. Figures are never asserted: they are
the benchmark's output, not a property of the harness."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sandbox import Sandbox, poll_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "bench" / "migration.py")
TINY = ["--keys", "200", "--slots", "20", "--reps", "1", "--load-rate", "200"]
TIMEOUT_S = 240.0


def env(sandbox: Sandbox) -> dict[str, str]:
    return {**sandbox.env, "PYTHONPATH": str(ROOT)}


def test_migration_bench_reports_both(sandbox: Sandbox) -> None:
    out = sandbox.dir / "migration.json"
    res = sandbox.run([SCRIPT, *TINY, "--json", str(out)], timeout=TIMEOUT_S, env=env(sandbox))
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    (row,) = json.loads(out.read_text())["shapes"]
    assert sorted(s["kind"] for s in row["samples"]) == ["harness", "reference"]
    assert all(s["keys"] == 200 for s in row["samples"]), row["samples"]
    assert set(row["medians"]["keys_per_s"]) == {"harness", "reference"}
    assert "--cluster-pipeline 10 (its default)" in res.stdout, res.stdout
    sandbox.assert_nothing_left()


def test_migration_bench_sigterm_leaves_nothing(sandbox: Sandbox) -> None:
    spawned = sandbox.spawn([SCRIPT, *TINY, "--reps", "2"], env(sandbox))
    try:
        poll_until(
            lambda: "rep 1" in spawned.output.read_text() or spawned.proc.poll() is not None,
            TIMEOUT_S,
            lambda: f"no sample yet; {spawned.describe()}",
        )
        assert spawned.proc.poll() is None, spawned.describe()
        spawned.proc.send_signal(signal.SIGTERM)
        spawned.wait_ended(60, "the benchmark did not stop on SIGTERM")
    finally:
        if spawned.proc.poll() is None:
            spawned.proc.kill()
            spawned.proc.wait()
    assert spawned.proc.returncode == 130, spawned.describe()
    assert "Traceback" not in spawned.output.read_text(), spawned.describe()
    sandbox.assert_nothing_left()
