"""Risks named from real log excerpts (tests/unit/upgrade_logs/, captured with Redis
6.2.14 and 7.0.15, Valkey 8.0.1 and 8.1.8), and the ones foreseen from the versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.upgrade.risks import (
    RDB_VERSIONS,
    Risk,
    can_replicate,
    classify,
    foreseen,
    rdb_version,
    reads_rdb,
)

LOGS = Path(__file__).parent / "upgrade_logs"

R62 = ("redis", (6, 2, 14))
R70 = ("redis", (7, 0, 15))
V80 = ("valkey", (8, 0, 1))
V81 = ("valkey", (8, 1, 8))


def risks(name: str, **kw: str) -> dict[str, Risk]:
    found = classify("n3", (LOGS / name).read_text(), **kw)
    assert len({r.name for r in found}) == len(found), "each name once"
    return {r.name: r for r in found}


# --- replication from a newer primary --------------------------------------------------


def test_demoted_7_0_primary_under_valkey_8_0_refuses_rdb_11_after_flushing() -> None:
    found = risks("replica-redis-7.0-demoted-under-valkey-8.0.log", role="replica")
    assert set(found) == {
        "rdb-version-refused",
        "replica-flushed-before-refusal",
        "refused-rdb-left-on-disk",
    }
    refused = found["rdb-version-refused"]
    assert refused.severity == "unsafe" and refused.node == "n3"
    assert refused.evidence.splitlines() == [
        "8193:S 02 Dec 2026 00:39:16.399 # Can't handle RDB format version 11",
        "8193:S 02 Dec 2026 00:39:16.399 # Failed trying to load the MASTER synchronization "
        "DB from disk: Invalid argument",
    ]
    assert "n3 (replica), redis 7.0.15" in refused.advice
    assert "RDB 11 > 10" in refused.advice and "upgrade it next" in refused.advice
    assert "never promote it" in refused.advice
    flushed = found["replica-flushed-before-refusal"]
    assert flushed.evidence.splitlines()[0].endswith("MASTER <-> REPLICA sync: Flushing old data")
    assert "it had been in sync: its data is gone" in flushed.advice  # partial resync before
    assert found["refused-rdb-left-on-disk"].severity == "warning"


def test_the_excerpt_ending_on_a_bare_refusal_is_not_read_as_a_start_up() -> None:
    text = (LOGS / "replica-redis-7.0-demoted-under-valkey-8.0.log").read_text()
    assert text.rstrip().endswith("Can't handle RDB format version 11")
    assert "rdb-load-refused" not in risks("replica-redis-7.0-demoted-under-valkey-8.0.log")


def test_demoted_6_2_primary_under_7_0_names_rdb_10_over_9() -> None:
    found = risks("replica-redis-6.2-demoted-under-7.0.log")
    refused = found["rdb-version-refused"]
    assert "RDB 10 > 9" in refused.advice and "redis 6.2.14" in refused.advice
    # 6.2 says no errno after "from disk"
    assert refused.evidence.splitlines()[1].endswith(
        "Failed trying to load the MASTER synchronization DB from disk"
    )
    assert "replica-flushed-before-refusal" in found


def test_fresh_7_0_replica_of_valkey_8_1_retries_and_counts_them() -> None:
    found = risks("replica-redis-7.0-fresh-of-valkey-8.1.log")
    refused = found["rdb-version-refused"]
    assert refused.evidence.splitlines()[-1] == "(refused 2 times)"
    # it flushed, but it never had been in sync: no claim of lost data beyond the flush
    assert "had been in sync" not in found["replica-flushed-before-refusal"].advice


def test_swapdb_replica_refuses_without_flushing_or_writing_the_rdb() -> None:
    found = risks("replica-redis-7.0-swapdb-under-valkey-8.0.log")
    assert set(found) == {"rdb-version-refused"}
    assert "from socket: Invalid argument" in found["rdb-version-refused"].evidence


def test_a_7_0_replica_cannot_restart_on_the_rdb_its_failed_sync_left() -> None:
    found = risks("replica-redis-7.0-restart-after-failed-sync.log")
    assert {"rdb-version-refused", "refused-rdb-left-on-disk", "rdb-load-refused"} <= set(found)
    fatal = found["rdb-load-refused"].evidence.splitlines()[1]
    assert fatal.endswith("# Fatal error loading the DB: Invalid argument. Exiting.")


def test_valkey_8_0_replica_of_8_1_syncs_without_a_risk() -> None:
    assert risks("replica-valkey-8.0-of-8.1-ok.log") == {}


# --- restart in place on another binary ------------------------------------------------


@pytest.mark.parametrize(
    ("log", "formats"),
    [
        ("restart-redis-6.2-on-7.0-rdb.log", "RDB 10 > 9"),
        ("restart-redis-7.0-on-valkey-8.0-rdb.log", "RDB 11 > 10"),
    ],
)
def test_rollback_in_place_across_an_rdb_bump_exits(log: str, formats: str) -> None:
    found = risks(log, role="primary")
    assert set(found) == {"rdb-load-refused"}
    r = found["rdb-load-refused"]
    assert r.severity == "unsafe" and formats in r.advice
    assert "rollback across an RDB bump is impossible" in r.advice
    assert "Fatal error loading the DB" in r.evidence


def test_rollback_of_a_valkey_aof_on_7_0_exits_on_the_rdb_base() -> None:
    found = risks("restart-redis-7.0-on-valkey-8.0-aof.log")
    assert set(found) == {"aof-load-refused"}
    lines = found["aof-load-refused"].evidence.splitlines()
    assert lines[0].endswith("# Can't handle RDB format version 11")
    assert lines[1].endswith(
        "# Error reading the RDB base file appendonly.aof.1.base.rdb, AOF loading aborted"
    )
    assert "(RDB 11 > 10)" in found["aof-load-refused"].advice


@pytest.mark.parametrize(
    "log",
    [
        "restart-valkey-8.0-on-8.1-rdb-ok.log",  # the 8.1.8 -> 8.0.1 downgrade loads
        "restart-redis-7.0-on-6.2-aof-ok.log",  # the old-style AOF is migrated
        # 7.0 -> 6.2 with AOF: 0 keys, and not a word in the log (foreseen() names it)
        "restart-redis-6.2-on-7.0-aof-silently-empty.log",
    ],
)
def test_restarts_that_logged_no_refusal(log: str) -> None:
    assert risks(log) == {}


def test_valkey_8_0_refuses_its_nodes_conf_over_a_shard_id() -> None:
    found = risks("restart-valkey-8.0-nodes-conf-shard-id.log")
    r = found["nodes-conf-refused"]
    assert r.severity == "unsafe"
    first, closing = r.evidence.splitlines()
    assert "# Unrecoverable error: corrupted cluster config file" in first
    assert "shard-id=d642ab6642f0d8f8878bfc5ed17ce5f0c672d127 master" in first
    assert closing == '".'
    assert "valkey-io/valkey#2171" in r.advice and "CLUSTER FORGET" in r.advice


def test_a_redis_nodes_conf_refusal_without_a_shard_id() -> None:
    tail = "1:M 02 Dec 2026 # Unrecoverable error: corrupted cluster config file.\n"
    (r,) = classify("n1", tail)
    assert r.name == "nodes-conf-refused" and "shard-id" not in r.advice


# --- crashes and configs ---------------------------------------------------------------


def test_a_crash_by_signal() -> None:
    r = risks("crash-valkey-8.0-signal.log")["server-crashed"]
    assert "valkey 8.0.1 crashed by signal: 11, si_code: 0" in r.evidence
    assert "while loading" not in r.advice  # it was serving


def test_an_assertion_names_its_condition() -> None:
    r = risks("crash-redis-6.2-assertion.log")["server-crashed"]
    assert r.evidence.splitlines()[-1].endswith("# ==> debug.c:498 '1 == 2' is not true")


def test_a_crash_while_loading_says_so() -> None:
    tail = "\n".join(
        [
            "1:M 08 Jul 2025 * Loading RDB produced by Valkey version 8.1.0",
            "=== VALKEY BUG REPORT START: Cut & paste starting from here ===",
            "1:M 08 Jul 2025 # valkey 8.0.3 crashed by signal: 11, si_code: 1",
        ]
    )
    (r,) = classify("n2", tail)
    assert "crashed while loading its data" in r.advice


@pytest.mark.parametrize(
    ("file", "directive", "version"),
    [
        ("config-redis-6.2-bad-directive.txt", "cluster-port", "Redis 6.2.14"),
        ("config-valkey-8.0-bad-directive.txt", "rdb-version-check", "Version 8.0.1"),
    ],
)
def test_a_config_written_for_another_version(file: str, directive: str, version: str) -> None:
    # printed on stdout before the log file opens: it comes in as the failure's text
    (r,) = classify("n4", "", error=(LOGS / file).read_text())
    assert r.name == "config-directive-unknown" and r.severity == "unsafe"
    assert f"'{directive}' is unknown to {version}" in r.advice
    assert r.evidence.splitlines()[-1] == "Bad directive or wrong number of arguments"


# --- the risk itself -------------------------------------------------------------------


def test_describe_and_json() -> None:
    r = Risk("rdb-version-refused", "unsafe", "n0", "line one\nline two", "upgrade it", step=3)
    assert r.describe() == (
        "[unsafe] rdb-version-refused on n0 at step 3: line one / line two -> upgrade it"
    )
    assert r.to_json() == {
        "name": "rdb-version-refused",
        "severity": "unsafe",
        "node": "n0",
        "evidence": "line one\nline two",
        "advice": "upgrade it",
        "step": 3,
    }
    assert Risk("x", "warning", "n1", "e", "a").describe() == "[warning] x on n1: e -> a"


# --- versions --------------------------------------------------------------------------


def test_rdb_versions_measured_and_from_the_sources() -> None:
    assert [rdb_version(*e) for e in (R62, R70, V80, V81)] == [9, 10, 11, 11]  # measured
    assert rdb_version("redis", (7, 2, 4)) == 11 and rdb_version("Redis", (7, 4)) == 12
    assert rdb_version("redis", (8, 0, 0)) == 12 and rdb_version("valkey", (9, 0, 0)) == 80
    assert rdb_version("valkey", (7, 2, 5)) == 11
    assert rdb_version("redis", (9, 9)) is None and rdb_version("redis", (7,)) is None
    assert all(k[0] in ("redis", "valkey") for k in RDB_VERSIONS)


@pytest.mark.parametrize(
    ("primary", "replica", "ok"),
    [
        (V80, R70, False),  # measured: RDB 11 > 10
        (R70, R62, False),  # measured: RDB 10 > 9
        (V81, V80, True),  # measured: same format
        (V81, R70, False),  # measured
        (R62, R70, True),  # measured, older to newer
        (R70, V80, True),
        (V80, V81, True),
        (("redis", (7, 4, 0)), ("valkey", (9, 0, 0)), False),  # 12..79 are foreign to valkey
        (("valkey", (9, 0, 0)), ("redis", (8, 0, 0)), False),  # 80 > 12
        (("redis", (7, 2, 4)), V80, True),
        (("redis", (9, 9, 0)), R70, None),
    ],
)
def test_can_replicate(
    primary: tuple[str, tuple[int, ...]], replica: tuple[str, tuple[int, ...]], ok: bool | None
) -> None:
    assert can_replicate(primary, replica) is ok


def test_reads_rdb() -> None:
    assert reads_rdb("valkey", (8, 1, 8), 11) and not reads_rdb("valkey", (8, 1, 8), 12)
    assert reads_rdb("redis", (7, 0, 15), 9) and reads_rdb("nosuch", (1, 0), 9) is None


# --- foreseen from the versions --------------------------------------------------------


def names(rs: list[Risk]) -> list[str]:
    assert all(r.node == "plan" for r in rs)
    return [r.name for r in rs]


def test_the_rehearsed_moves() -> None:
    assert names(foreseen(R62, R70)) == ["rdb-format-bump"]
    assert names(foreseen(R70, V80)) == ["rdb-format-bump", "nodes-conf-shard-id"]
    assert names(foreseen(V80, V81)) == [] and names(foreseen(V81, V80)) == []
    assert names(foreseen(R70, R62)) == ["rollback-in-place-refused"]
    assert names(foreseen(R70, R62, persistence="aof")) == [
        "rollback-in-place-refused",
        "aof-ignored-on-rollback",
    ]
    assert names(foreseen(R70, V81)) == ["rdb-format-bump"]  # 8.1.8 reconciles shard ids


def test_foreseen_texts_name_the_versions_and_formats() -> None:
    (bump,) = foreseen(R62, R70)
    assert bump.severity == "warning"
    assert bump.evidence == "predicted: redis 7.0.15 writes RDB 10, redis 6.2.14 reads up to 9"
    assert "never promote a node still on redis 6.2.14" in bump.advice
    (back,) = foreseen(V80, R70)[:1]
    assert back.name == "rollback-in-place-refused" and back.severity == "unsafe"
    assert "valkey 8.0.1 wrote RDB 11, redis 7.0.15 reads up to 10" in back.evidence


def test_hostname_extension_with_6_2() -> None:
    assert "bus-extensions-dropped" in names(foreseen(R62, R70, hostname=True))
    assert "bus-extensions-dropped" not in names(foreseen(R62, R70))
