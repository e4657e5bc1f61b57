"""The scaling suite's account of what the client's redirect handling left over, and the
known migration issues in the shipped profiles."""

from __future__ import annotations

from pathlib import Path

from harness.history import History, Op
from harness.impl import load_profiles
from suites.chaos._midway import OPEN_ON_REPLICA, TAKEN_BACK, UNREACHABLE
from suites.chaos._scaling import LeftoverChecker, RedirectTally, leftovers


def _op(i: int, outcome: str = "ok", error: str | None = None, kind: str = "add") -> Op:
    return Op(i, 0, kind, f"k{i}", i, i, 10 * i, 10 * i + 5, outcome, "127.0.0.1:7000", error)  # type: ignore[arg-type]


def test_nothing_left_is_valid_and_says_so() -> None:
    h = History([_op(i) for i in range(5)])
    r = LeftoverChecker().check(h)
    assert r.valid == "valid"
    assert r.figures == {"left_failed": 0, "left_unknown": 0, "left_redirects": 0}
    assert "no operation left" in r.message


def test_left_overs_group_by_error_without_numbers() -> None:
    h = History(
        [
            _op(1),
            _op(2, "fail", "ResponseError: CLUSTERDOWN Hash slot not served"),
            _op(3, "fail", "NotSent: Error connecting to 127.0.0.1:7001: refused"),
            _op(4, "fail", "NotSent: Error connecting to 127.0.0.1:7002: refused"),
            _op(5, "info", "TimeoutError: no reply within 0.5 s"),
            _op(6, "fail", "ResponseError: MOVED 12 127.0.0.1:7003", kind="read"),  # not a write
        ]
    )
    r = leftovers(h)
    assert (r.total, r.failed, r.unknown, r.redirects) == (4, 3, 1, 0)
    assert r.by_error["NotSent: Error connecting to N.N.N.N:N: refused"] == 2
    assert [o.id for o in r.examples] == [2, 3, 4, 5]
    text = r.describe()
    assert "4 operations left" in text and "2 x NotSent" in text


def test_strict_fails_on_unknown_outcomes_and_unfollowed_redirections_only() -> None:
    unknown = History([_op(1, "info", "ConnectionError: connection to 127.0.0.1:7000 lost")])
    assert LeftoverChecker(strict=True).check(unknown).valid == "invalid"
    lenient = LeftoverChecker(strict=False).check(unknown)
    assert lenient.valid == "valid" and lenient.figures["left_unknown"] == 1
    for err in ("ResponseError: ASK 3 127.0.0.1:7001", "ClusterError: TTL exhausted."):
        r = LeftoverChecker(strict=True).check(History([_op(1, "fail", err)]))
        assert r.valid == "invalid" and r.figures["left_redirects"] == 1, err
    down = History([_op(1, "fail", "ResponseError: CLUSTERDOWN The cluster is down")])
    r = LeftoverChecker(strict=True).check(down)
    assert r.valid == "valid" and r.figures["left_failed"] == 1
    assert "1 x ResponseError: CLUSTERDOWN The cluster is down" in r.message


def test_redirect_tally_sums_deltas_per_node() -> None:
    t = RedirectTally()
    t.first = {"a": {"MOVED": 2, "ASK": 1, "TRYAGAIN": 0}, "new": {"MOVED": 0, "ASK": 0}}
    t.last = {"a": {"MOVED": 7, "ASK": 4, "TRYAGAIN": 0}, "new": {"MOVED": 3, "ASK": 2}}
    assert t.total() == {"MOVED": 8, "ASK": 5, "TRYAGAIN": 0}
    assert t.describe() == "redirections the servers sent: MOVED 8, ASK 5, TRYAGAIN 0"


def test_the_known_migration_issues_match_the_suites_phrases() -> None:
    """The profiles turn exactly these failures into known issues, with the reference."""
    profiles = load_profiles(
        Path(__file__).resolve().parents[2] / "fixtures" / "implementations.toml"
    )
    for name in ("redis-6.2", "redis-7.0"):
        ref = profiles[name].known_issue(f"slot 0: 30 keys {UNREACHABLE}, e.g. ...")
        assert ref is not None and ref.startswith("redis/redis#4627")
    ref = profiles["valkey-8.0"].known_issue(f"slot 0 {OPEN_ON_REPLICA} that was down")
    assert ref is not None and ref.startswith("valkey-io/valkey#998")
    assert profiles["valkey-8.0"].known_issue(f"slot 0: 30 keys {UNREACHABLE}") is None
    ref = profiles["valkey-8.0"].known_issue(
        f"127.0.0.1:7001, restarted, {TAKEN_BACK} 127.0.0.1:7004"
    )
    assert ref is not None and "valkey-io/valkey#974" in ref
    assert profiles["redis-7.0"].known_issue(TAKEN_BACK) is None
    assert profiles["redis-7.0"].known_issue("AssertionError: lost writes") is None
