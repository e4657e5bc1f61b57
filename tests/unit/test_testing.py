"""harness.testing: never(), RESP encoding/parsing, and FailoverWatcher on a fake cluster."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from harness.errors import NotReadyError
from harness.testing import (
    ErrorReply,
    FailoverWatcher,
    RespError,
    bound_metric,
    encode_command,
    error_code,
    never,
    parse_reply,
)

FAST = 0.001

# -- never --------------------------------------------------------------------------------


def test_never_polls_for_the_whole_period_and_counts_observations() -> None:
    calls = []
    t0 = time.monotonic()
    seen = never(lambda: (calls.append(1), (False, "fine"))[1], 0.05, "x", interval=FAST)
    assert time.monotonic() - t0 >= 0.05
    assert seen == len(calls) > 1


def test_never_fails_at_once_with_what_it_saw() -> None:
    calls = iter([(False, "ok"), (False, "ok"), (True, "flagged by n1")])
    t0 = time.monotonic()
    with pytest.raises(AssertionError) as exc:
        never(lambda: next(calls), 10.0, "master flagged failed", interval=FAST)
    assert time.monotonic() - t0 < 1.0, "must not wait out the period"
    msg = str(exc.value)
    assert msg.startswith("master flagged failed: happened after ")
    assert msg.endswith("observed: flagged by n1")


def test_never_accepts_an_assert_style_check() -> None:
    state = {"n": 0}

    def check() -> None:
        state["n"] += 1
        assert state["n"] < 3, "role changed"

    with pytest.raises(AssertionError, match=r"keeps its role: happened after .*role changed"):
        never(check, 10.0, "keeps its role", interval=FAST)
    assert never(lambda: None, 0.01, "check passes", interval=FAST) >= 1


def test_never_refuses_a_bare_bool() -> None:
    with pytest.raises(TypeError, match="bare bool"):
        never(lambda: False, 0.01, "x", interval=FAST)


def test_never_tolerates_failed_looks_but_needs_one_observation() -> None:
    calls = iter([RuntimeError("timeout"), (False, "ok")])

    def flaky() -> tuple[bool, str]:
        item = next(calls, (False, "ok"))
        if isinstance(item, Exception):
            raise item
        return item

    assert never(flaky, 0.02, "x", interval=FAST) >= 1

    def broken() -> tuple[bool, str]:
        raise ConnectionError("refused")

    with pytest.raises(
        NotReadyError, match=r"could not be observed once.*ConnectionError: refused"
    ):
        never(broken, 0.02, "x", interval=FAST)


def test_never_uses_describe_for_the_observation() -> None:
    with pytest.raises(AssertionError, match="observed: <3 flags>"):
        never(lambda: (True, 3), 1.0, "x", describe=lambda v: f"<{v} flags>")


# -- RESP ---------------------------------------------------------------------------------


def test_encode_command_as_bulk_strings() -> None:
    assert encode_command(("SET", "k", 1)) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n"
    assert encode_command((b"\x00\xff", "é")) == b"*2\r\n$2\r\n\x00\xff\r\n$2\r\n\xc3\xa9\r\n"
    with pytest.raises(TypeError):
        encode_command((True,))
    with pytest.raises(TypeError):
        encode_command((None,))


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", "OK"),
        (b"-MOVED 5259 127.0.0.1:30001\r\n", ErrorReply("MOVED 5259 127.0.0.1:30001")),
        (b":42\r\n", 42),
        (b"$5\r\nhello\r\n", b"hello"),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", [1, [b"x"]]),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
    ],
)
def test_parse_reply(wire: bytes, value: object) -> None:
    assert parse_reply(wire) == (value, len(wire))


def test_parse_reply_waits_for_the_whole_reply() -> None:
    whole = b"*2\r\n$5\r\nhello\r\n-ERR x\r\n"
    for cut in range(len(whole)):
        assert parse_reply(whole[:cut]) is None, whole[:cut]
    assert parse_reply(whole) == ([b"hello", ErrorReply("ERR x")], len(whole))


def test_parse_reply_from_an_offset_and_garbage() -> None:
    buf = b"+OK\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    _, end = parse_reply(buf)  # type: ignore[misc]
    reply, _ = parse_reply(buf, end)  # type: ignore[misc]
    assert isinstance(reply, ErrorReply) and reply.code == "CROSSSLOT"
    with pytest.raises(RespError):
        parse_reply(b"HTTP/1.1 400\r\n")


def test_error_code_is_the_first_word() -> None:
    assert error_code("MOVED 1 h:1") == "MOVED"
    assert error_code("CLUSTERDOWN") == "CLUSTERDOWN"


# -- FailoverWatcher ------------------------------------------------------------------------


@dataclass
class FakeNode:
    addr: str
    node_id: str = ""


@dataclass
class FakeSpec:
    bound_ms: int = 300

    def failover_bound_ms(self) -> int:
        return self.bound_ms


@dataclass
class FakeEvent:
    t_ns: int


@dataclass
class FakeCluster:
    promote_after: int  # probe_write calls until the replica accepts
    spec: FakeSpec = field(default_factory=FakeSpec)
    writes: list[tuple[str, str, str]] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    flag_after: int = 1
    flag_calls: int = 0

    def first_slot(self, master: FakeNode) -> int:
        return 42

    def probe_write(self, node: FakeNode, key: str, value: str = "probe") -> tuple[bool, str]:
        self.writes.append((node.addr, key, value))
        done = len(self.writes) >= self.promote_after
        return done, "ok" if done else "MovedError: 42 m:1"

    def probe_flagged_failed(self, node: FakeNode) -> tuple[bool, str]:
        self.flag_calls += 1
        return self.flag_calls >= self.flag_after, "{}"

    def record(self, action: str, node: str, detail: str = "") -> None:
        self.events.append((action, node, detail))


class FakeMetrics:
    def __init__(self) -> None:
        self.values: dict[str, float | int | str] = {}

    def record(self, name: str, value: float | int | str) -> None:
        self.values[name] = value


def test_failover_watcher_times_from_the_fault_and_records() -> None:
    # a bound far above the ~70 ms this takes: a busy machine (parallel tests) cannot
    # stall the polls past it
    cluster = FakeCluster(promote_after=3, spec=FakeSpec(bound_ms=30_000))
    metrics = FakeMetrics()
    m, r = FakeNode("m:1"), FakeNode("r:2")
    watcher = FailoverWatcher(cluster, m, r, metrics=metrics)  # type: ignore[arg-type]
    assert watcher.slot == 42 and watcher.key.startswith("failover:")
    fault = FakeEvent(time.monotonic_ns() - 50_000_000)  # 50 ms ago
    result = watcher.wait(fault, value="v")  # type: ignore[arg-type]
    assert cluster.writes == [("r:2", watcher.key, "v")] * 3
    assert 50 <= result.failover_ms < 30_000 and result.bound_ms == 30_000
    assert result.within_bound and result.fail_flag_ms is None
    assert cluster.events == [("promoted", "r:2", f"{result.failover_ms:.0f} ms")]
    assert metrics.values == {"failover_ms": result.failover_ms, "failover_bound_ms": 30_000}


def test_failover_watcher_deadline_is_the_fault_plus_the_bound() -> None:
    # 50 ms are left, where a wait timed from the call would take 10 s: far apart, so a
    # busy machine (parallel tests) cannot blur them
    cluster = FakeCluster(promote_after=10**9, spec=FakeSpec(bound_ms=10_000))
    watcher = FailoverWatcher(cluster, FakeNode("m:1"), FakeNode("r:2"), slot=7)  # type: ignore[arg-type]
    fault = time.monotonic_ns() - 9_950_000_000  # 9950 of the 10000 ms already gone
    t0 = time.monotonic()
    with pytest.raises(NotReadyError, match=r"r:2 serving writes for slot 7 within 10000 ms"):
        watcher.wait(fault)
    assert time.monotonic() - t0 < 5, "the wait must end 10 s after the fault"


def test_failover_watcher_flagged_and_custom_metric() -> None:
    cluster = FakeCluster(promote_after=1, flag_after=2)
    metrics = FakeMetrics()
    watcher = FailoverWatcher(  # type: ignore[arg-type]
        cluster, FakeNode("m:1"), FakeNode("r:2"), key="k", metrics=metrics
    )
    result = watcher.wait(time.monotonic_ns(), flagged=True, bound_ms=5000, metric="manual_ms")
    assert result.fail_flag_ms is not None and result.fail_flag_ms <= result.failover_ms
    assert [e[0] for e in cluster.events] == ["fail-flag", "promoted"]
    assert set(metrics.values) == {"manual_ms", "manual_bound_ms", "fail_flag_ms"}
    assert cluster.writes == [("r:2", "k", "after-failover")]


def test_bound_metric_name() -> None:
    assert bound_metric("failover_ms") == "failover_bound_ms"
    assert bound_metric("manual_failover_ms") == "manual_failover_bound_ms"
