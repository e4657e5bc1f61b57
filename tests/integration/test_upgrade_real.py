"""Rolling-upgrade rehearsals (harness.upgrade) on real servers, small: the verdict and
the named risks come from what the servers do, and the command line refuses bad input
in one line.

- Valkey 8.0.1 -> 8.1.8 in place on one shard: every step completes, every check holds
  (the restart check included), every node reports 8.1.8 at the end: safe.
- The same cluster upgraded primary first without persistence: the primary comes back
  empty and its replica resyncs the empty dataset: unsafe, with the writes counted.
- Redis 7.0.15 -> 6.2.14 in place (a rollback): the replica's files are RDB 10, which
  6.2 refuses at start-up: the step fails and the risk is named from the log line.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness import Cluster, ClusterSpec
from harness import impl as impls
from harness.impl import Implementation
from harness.upgrade.rehearse import Rehearsal, plan_for, rehearse
from harness.workload import Workload, WorkloadSpec


def installed(name: str) -> Implementation:
    found = impls.available(name)
    if found is None:
        pytest.skip(f"{name} is not installed here (scripts/setup-system.sh)")
    return found


@pytest.fixture
def one_shard() -> Iterator[list[Cluster]]:
    made: list[Cluster] = []
    yield made
    for c in made:
        c.close()


def _rehearse(made: list[Cluster], source: str, target: str, kind: str) -> Rehearsal:
    src, dst = installed(source), installed(target)
    cluster = Cluster.start(src, ClusterSpec(masters=1, replicas=1))
    made.append(cluster)

    def load(c: Cluster) -> Workload:
        return Workload(c, WorkloadSpec(kind="set", clients=2, keys=8, rate=200.0, seed=7))

    return rehearse(cluster, dst, plan_for(cluster, dst, kind), load)  # type: ignore[arg-type]


def test_in_place_upgrade_of_one_shard_is_safe_and_checked_at_every_step(
    one_shard: list[Cluster],
) -> None:
    r = _rehearse(one_shard, "valkey-8.0", "valkey-8.1", "in-place")
    assert r.verdict == "safe", r.summary()
    assert [s.step.action for s in r.records] == ["upgrade-replica", "failover", "upgrade-replica"]
    names = [c.name for c in r.records[0].checks]
    assert names[:4] == [
        "coverage-and-agreement",
        "one-primary-per-shard",
        "replicas-synced",
        "versions",
    ]
    assert "restart" in names, names
    assert all(c.status != "fail" for s in r.records for c in s.checks), r.table()
    assert set(r.records[-1].versions.values()) == {"8.1.8"}
    assert r.loss is not None and r.loss.acknowledged > 0 and r.lost_outside_windows == 0
    data = r.to_json()
    assert data["verdict"] == "safe" and len(data["steps"]) == 3


def test_primary_first_without_persistence_is_unsafe_with_the_losses_counted(
    one_shard: list[Cluster],
) -> None:
    r = _rehearse(one_shard, "valkey-8.0", "valkey-8.1", "in-place-primaries-first")
    assert r.verdict == "unsafe", r.summary()
    assert r.lost_outside_windows > 0, r.summary()
    assert any("lost outside failover windows" in reason for reason in r.reasons)


def test_rollback_onto_an_older_rdb_format_fails_with_the_risk_named(
    one_shard: list[Cluster],
) -> None:
    r = _rehearse(one_shard, "redis-7.0", "redis-6.2", "in-place")
    assert r.verdict == "unsafe", r.summary()
    first = r.records[0]
    assert first.status == "failed" and "exited at start-up" in first.error, r.table()
    assert [s.status for s in r.records[1:]] == ["skipped", "skipped"]
    refused = [k for k in r.risks if k.name in ("rdb-load-refused", "rdb-version-refused")]
    assert refused and "Can't handle RDB format version 10" in refused[0].evidence, r.summary()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "upgrade", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dry_run_prints_the_plan_with_what_the_versions_foretell() -> None:
    installed("redis-6.2")
    installed("redis-7.0")
    out = _cli("--from", "redis-7.0", "--to", "redis-6.2", "--dry-run", "--plan", "in-place")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "upgrade plan in-place: redis 7.0.15 -> redis 6.2.14, 3 shards, 9 steps"
    assert "   2. shard 0: failover n3 (takes over from n0)" in lines
    assert any("foreseen: rollback-in-place-refused" in ln for ln in lines), out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "redis-7.0", "--to", "nope"), "--to nope: unknown implementation; known: "),
        (("--to", "redis-7.0"), "upgrade: give both --from and --to"),
        (
            ("--from", "redis-7.0", "--to", "valkey-8.1@some/image:1"),
            "an image runs on --backend docker only",
        ),
        (("--from", "redis-7.0", "--to", "/no/such/server"), "--to /no/such/server: no such file"),
        (
            ("--from", "redis-7.0", "--to", "valkey-8.0", "--shape", "3by1"),
            "--shape '3by1': give MASTERSxREPLICAS",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    out = _cli(*args)
    assert out.returncode == 2, (out.stdout, out.stderr)
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
