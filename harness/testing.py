"""What a suite needs, in one import: ``from harness.testing import ...``.

Suites are meant to read as a specification: each test states a rule of the Redis Cluster
contract and checks it. The helpers here keep the mechanics (polling, raw error replies,
timing a failover) out of the way, and make each check as strict as the rule:

* :func:`wait_for` / :func:`eventually`: "this must happen within T" (from
  :mod:`harness.wait`);
* :func:`never`: "this must not happen for T", polled, failing at the first sighting;
* :func:`expect_error`: the exact error reply a node sends, code included (a client
  library rewrites error replies; a rule about ``-MOVED <slot> <endpoint>:<port>`` needs the
  bytes the server wrote);
* :class:`FailoverWatcher`: when did a replica take over, against the bound the
  specification implies (one implementation instead of one per suite);
* :class:`Metrics`: numbers for the report (the ``metrics`` fixture's type).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from harness import guard, progress
from harness.crc16 import key_for_slot
from harness.errors import HarnessError, NotReadyError
from harness.plugin import Metrics
from harness.security import PLAIN, Security, refusal
from harness.wait import eventually, wait_for

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster
    from harness.history import Event

__all__ = [
    "PLAIN",
    "ErrorReply",
    "Failover",
    "FailoverWatcher",
    "Metrics",
    "RespError",
    "bound_metric",
    "encode_command",
    "error_code",
    "eventually",
    "expect_error",
    "never",
    "parse_reply",
    "raw_commands",
    "wait_for",
]


# -- never ------------------------------------------------------------------------------


def never(
    probe_or_check: Callable[[], object],
    for_s: float,
    what: str,
    interval: float = 0.05,
    describe: Callable[[object], str] = str,
) -> int:
    """Assert that ``what`` does not happen for ``for_s`` seconds; return how many times
    it was observed not happening.

    ``probe_or_check`` is either

    * a probe, as for :func:`wait_for`, returning ``(happened, observed)``: ``happened``
      true means the forbidden thing is seen now; or
    * a check, as for :func:`eventually`, asserting what must keep holding: an
      ``AssertionError`` means the forbidden thing is seen now (any other return value
      means it is not).

    It polls rather than sleeping once and looking at the end, because many violations are
    transient (a node flagged failed that is cleared a moment later); and it fails at once,
    with what it saw, instead of waiting out the period. A probe that raises anything else
    could not look this time: that is tolerated, but if no poll ever succeeded the claim is
    unproven and this fails too. A probe returning a bare ``bool`` is refused, since it
    would be ambiguous (is ``True`` "happened" or "fine"?).
    """
    start = time.monotonic()
    deadline = start + for_s
    observed = 0
    last_error = "never probed"
    while True:
        try:
            result = probe_or_check()
        except AssertionError as exc:
            raise AssertionError(
                f"{what}: happened after {time.monotonic() - start:.2f}s of {for_s:.1f}s: {exc}"
            ) from exc
        except Exception as exc:  # could not look this time
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            happened, seen = _as_observation(result)
            if happened:
                raise AssertionError(
                    f"{what}: happened after {time.monotonic() - start:.2f}s of {for_s:.1f}s; "
                    f"observed: {describe(seen)}"
                )
            observed += 1
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if not observed:
        raise NotReadyError(
            f"{what}: could not be observed once in {for_s:.1f}s (so not shown absent); "
            f"last error: {last_error}"
        )
    return observed


def _as_observation(result: object) -> tuple[bool, object]:
    if isinstance(result, bool):
        raise TypeError(
            "never(): the callable returned a bare bool; return (happened, observed) "
            "like a wait_for probe, or assert what must hold like an eventually check"
        )
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool):
        return result[0], result[1]
    return False, result


# -- raw replies --------------------------------------------------------------------------


class RespError(Exception):
    """Bytes that are not a RESP2 reply."""


@dataclass(frozen=True)
class ErrorReply:
    """An error reply exactly as the server sent it, without the leading ``-``:
    ``MOVED 5259 127.0.0.1:30001``."""

    text: str

    @property
    def code(self) -> str:
        return error_code(self.text)


def error_code(text: str) -> str:
    """The code of an error reply: its first word (``MOVED``, ``CROSSSLOT``, ``ERR``)."""
    return text.split(" ", 1)[0]


def encode_command(args: Sequence[object]) -> bytes:
    """A command as a RESP array of bulk strings (how every client sends commands)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} {arg!r} as a command argument")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


Reply: TypeAlias = str | int | bytes | ErrorReply | list["Reply"] | None


def parse_reply(buf: bytes, start: int = 0) -> tuple[Reply, int] | None:
    """One RESP2 reply at ``start``: ``(value, end)``, or None while incomplete.

    Simple strings come back as ``str``, bulk strings as ``bytes``, errors as
    :class:`ErrorReply`, arrays as lists (nil as None).
    """
    eol = buf.find(b"\r\n", start)
    if eol < 0:
        return None
    kind, line = buf[start : start + 1], buf[start + 1 : eol]
    after = eol + 2
    if kind == b"+":
        return line.decode(errors="replace"), after
    if kind == b"-":
        return ErrorReply(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buf) < after + length + 2:
            return None
        return buf[after : after + length], after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items: list[Reply] = []
        for _ in range(count):
            parsed = parse_reply(buf, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return items, after
    raise RespError(f"not a RESP2 reply: {bytes(buf[start : start + 40])!r}")


def raw_commands(
    node: Node, *cmds: Sequence[object], timeout: float = 2.0, security: Security | None = None
) -> list[Reply]:
    """Send ``cmds`` on one fresh connection to ``node`` and return their replies as the
    server wrote them (RESP2, error replies as :class:`ErrorReply`).

    The connection uses the cluster's TLS and credentials (AUTH first, its reply not
    returned) unless ``security`` says otherwise: ``PLAIN`` for a client that knows
    nothing, ``node.security.anonymous()`` for TLS without a password.

    A plain socket rather than redis-py: redis-py turns ``-MOVED 5259 h:p`` into a
    ``MovedError("5259 h:p")`` and ``-ERR x`` into ``ResponseError("x")``, so the code
    cannot always be told apart from the message. It connects where the node's control
    client does (``node.host:node.port``, not a proxy in front of it); one connection, so
    per-connection state (``READONLY``, ``ASKING``) applies to the later commands.
    """
    sec = node.security if security is None else security
    auth = [sec.auth_args()] if sec.auth_args() else []
    with _connect(node, sec, timeout) as sock:
        sock.sendall(b"".join(encode_command(c) for c in [*auth, *cmds]))
        buf = b""
        replies: list[Reply] = []
        pos = 0
        while len(replies) < len(cmds) + len(auth):
            parsed = parse_reply(buf, pos)
            if parsed is None:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(
                        f"{node.addr} closed the connection after {len(replies)} of "
                        f"{len(cmds)} replies"
                    )
                buf += chunk
                continue
            reply, pos = parsed
            replies.append(reply)
    if auth and isinstance(replies[0], ErrorReply):
        raise HarnessError(refusal(f"{node.name} {node.addr}", replies[0].text))
    return replies[len(auth) :]


def _connect(node: Node, sec: Security, timeout: float) -> socket.socket:
    guard.check(node.host, node.port)
    sock = socket.create_connection((node.host, node.port), timeout=timeout)
    ctx = sec.ssl_context()
    if ctx is None:
        return sock
    try:
        return ctx.wrap_socket(sock, server_hostname=node.host)
    except BaseException:
        sock.close()
        raise


def _show(args: Sequence[object]) -> str:
    return " ".join(a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in args)


def expect_error(
    node: Node,
    *cmd: object,
    code: str | None = "MOVED",
    before: Sequence[Sequence[object]] = (),
    timeout: float = 2.0,
    security: Security | None = None,
) -> str:
    """Run ``cmd`` on ``node`` and return its error reply exactly, code included
    (``"MOVED 5259 127.0.0.1:30001"``), so a test can compare it with what the rule says.

    Fails (``AssertionError``) if the command succeeded, or failed with another code than
    ``code`` (``None`` accepts any). ``before``: commands sent first on the same connection
    (``[("READONLY",)]``, ``[("ASKING",)]``); each must succeed. ``security``: as for
    :func:`raw_commands` (default: the cluster's credentials and TLS).
    """
    *setup, reply = raw_commands(node, *before, cmd, timeout=timeout, security=security)
    where = f"{node.name} {node.addr}"
    for args, got in zip(before, setup, strict=True):
        if isinstance(got, ErrorReply):
            raise AssertionError(f"{where}: {_show(args)} (before {_show(cmd)}) failed: {got.text}")
    want = f"a {code} error" if code else "an error"
    if not isinstance(reply, ErrorReply):
        raise AssertionError(
            f"{where}: {_show(cmd)} should fail with {want}, but replied {reply!r}"
        )
    if code is not None and reply.code != code:
        raise AssertionError(f"{where}: {_show(cmd)} should fail with {want}, got {reply.text!r}")
    return reply.text


# -- failovers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failover:
    """What a :class:`FailoverWatcher` measured, from the fault on the monotonic clock."""

    master: str
    replica: str
    slot: int
    failover_ms: float  # until the replica accepted a write for ``slot``
    bound_ms: int
    fail_flag_ms: float | None = None  # until every live node flagged the master failed

    @property
    def within_bound(self) -> bool:
        return self.failover_ms <= self.bound_ms


class FailoverWatcher:
    """Times the takeover of a lost master by its replica.

    Create it *before* the fault (it reads the master's first slot then, while the master
    still answers), then call :meth:`wait` with the fault's event. The replica has taken
    over when it accepts a write for that slot itself: that is what a client needs, and it
    implies the promotion, a config epoch that won, and the end of ``CLUSTERDOWN``. The
    deadline is the fault time plus ``cluster.spec.failover_bound_ms()``: the bound the
    specification implies (FAIL within 2·node timeout, an election delay under 2 s, 1 s
    per extra replica rank), so a slow failover fails the test rather than only being slow.
    """

    def __init__(
        self,
        cluster: Cluster,
        master: Node,
        replica: Node,
        *,
        slot: int | None = None,
        key: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.cluster = cluster
        self.master = master
        self.replica = replica
        self.slot = cluster.first_slot(master) if slot is None else slot
        self.key = key if key is not None else key_for_slot(self.slot, prefix="failover:")
        self.metrics = metrics
        self.bound_ms = cluster.spec.failover_bound_ms()

    def wait(
        self,
        since: Event | int,
        *,
        value: str = "after-failover",
        flagged: bool = False,
        bound_ms: int | None = None,
        metric: str = "failover_ms",
    ) -> Failover:
        """Poll until the replica serves writes for the slot, at most until ``since`` (an
        event or a ``time.monotonic_ns()`` instant) plus the bound; record a ``promoted``
        event and the metrics ``<metric>`` and ``<metric without _ms>_bound_ms``.

        ``flagged``: first wait until every live node flags the master failed (event
        ``fail-flag``, metric ``fail_flag_ms``). ``bound_ms`` replaces the automatic-failover
        bound (a manual failover has its own). ``value`` is what the probe writes to
        :attr:`key`, for tests that read it back.
        """
        t0 = since if isinstance(since, int) else since.t_ns
        bound = self.bound_ms if bound_ms is None else bound_ms
        deadline_ns = t0 + bound * 1_000_000
        fail_flag_ms = None
        progress.phase(f"waiting for failover: {self.replica.addr} to take over (bound {bound} ms)")
        if flagged:
            wait_for(
                lambda: self.cluster.probe_flagged_failed(self.master),
                _remaining_s(deadline_ns),
                f"{self.master.addr} flagged failed by every live node",
                interval=0.01,
            )
            fail_flag_ms = _since_ms(t0)
            self.cluster.record("fail-flag", self.master.addr, f"{fail_flag_ms:.0f} ms")
        wait_for(
            lambda: self.cluster.probe_write(self.replica, self.key, value),
            _remaining_s(deadline_ns),
            f"{self.replica.addr} serving writes for slot {self.slot} within {bound} ms "
            f"of losing {self.master.addr}",
            interval=0.01,
        )
        failover_ms = _since_ms(t0)
        self.cluster.record("promoted", self.replica.addr, f"{failover_ms:.0f} ms")
        if self.metrics is not None:
            self.metrics.record(metric, failover_ms)
            self.metrics.record(bound_metric(metric), bound)
            if fail_flag_ms is not None:
                self.metrics.record("fail_flag_ms", fail_flag_ms)
        return Failover(
            self.master.addr, self.replica.addr, self.slot, failover_ms, bound, fail_flag_ms
        )


def bound_metric(metric: str) -> str:
    """``failover_ms`` -> ``failover_bound_ms``: the bound is reported next to the value."""
    return f"{metric.removesuffix('_ms')}_bound_ms"


def _since_ms(t0_ns: int) -> float:
    return (time.monotonic_ns() - t0_ns) / 1e6


def _remaining_s(deadline_ns: int) -> float:
    """Seconds left until ``deadline_ns``; never negative (then ``wait_for`` probes once)."""
    return max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)
