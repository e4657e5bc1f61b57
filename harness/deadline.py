"""Hang protection: a per-test watchdog whose deadline comes from the test's own waits.

A hung server (a stopped process, a deadlock) can block a test forever in a call that
has no timeout; one such test must not stall a CI run. The :class:`Watchdog` gives each
phase of a test (setup, call, teardown) a :class:`Deadline`; when it passes, it collects
the state of the test's nodes (:func:`node_states`: process state, last log lines, INFO
where the node answers) and interrupts the test's thread with SIGALRM, whose handler
raises :class:`DeadlineExceeded` carrying those states, as pytest-timeout's signal
method does. The test fails with them, its teardown kills the cluster, the run goes on.

How the deadline is derived, from the node timeout NT, not from a wall-clock guess:

- **base budget** ``SETUP_S + BASE_NODE_TIMEOUTS * NT`` (30 s at the default NT of 2 s)
  for what a phase does outside waits: spawning servers, forming the cluster with
  control calls (each bounded by its own short client timeout), the test's commands, and
  the failovers it causes (one takes at most ``2 NT + 2 s``, so ten NTs hold a few);
- **every wait extends it**: :func:`harness.wait.wait_for` and ``eventually`` announce
  their timeout as they begin, and the deadline becomes at least that wait's own end
  plus a grace of ``PROBE_S + 2 NT``: a probe started just before its wait ended may
  still block for one client timeout (5 s, the cluster client's socket timeout), and
  that call may be waiting out a node-timeout-driven change (PFAIL to FAIL). So a test
  that legitimately waits long is never cut, while a call blocked beyond anything it was
  allowed is. Code that blocks on purpose without those helpers says so with
  :func:`allow`.

A fixed deadline (``--test-deadline``, ``@pytest.mark.deadline``) is a hard limit: waits
do not extend it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import redis

from harness import fanout, wait
from harness.errors import HarnessError
from harness.topology import parse_info

if TYPE_CHECKING:
    from harness.backends.base import Node
    from harness.cluster import Cluster

SETUP_S = 10.0  # spawning and forming outside waits: a handful of bounded control calls
BASE_NODE_TIMEOUTS = 10  # a few failovers' worth (each at most 2 NT + 2 s)
PROBE_S = 5.0  # the longest client timeout one probe call blocks for (Cluster.client's)
GRACE_NODE_TIMEOUTS = 2  # a node-timeout-driven change that call may be waiting out
INFO_TIMEOUT_S = 0.5  # a hung node must not slow the collection of the others' states
LOG_LINES = 8
REPEAT_S = 2.0  # how soon an interruption the test swallowed is sent again (at least)
INFO_FIELDS = (
    "role",
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "loading",
    "used_memory_human",
    "master_link_status",
)
STATES = {"R": "running", "S": "sleeping", "D": "in the kernel", "T": "stopped", "t": "traced"}
STATES |= {"Z": "zombie", "X": "dead", "I": "idle"}


class DeadlineExceeded(HarnessError):
    """A test phase ran past its deadline; the message holds the states of its nodes."""


def base_budget_s(node_timeout_s: float) -> float:
    """What a phase may take outside its waits (see the module docstring)."""
    return SETUP_S + BASE_NODE_TIMEOUTS * node_timeout_s


def grace_s(node_timeout_s: float) -> float:
    """How far past a wait's own end the deadline lies (see the module docstring)."""
    return PROBE_S + GRACE_NODE_TIMEOUTS * node_timeout_s


@dataclass
class Deadline:
    """The arithmetic of one phase's deadline (times are ``time.monotonic()`` seconds)."""

    started: float
    base_s: float
    grace_s: float = 0.0
    fixed: bool = False
    node_timeout_s: float = 0.0
    extended_to: float = 0.0  # the latest wait's end plus grace

    @classmethod
    def derived(cls, started: float, node_timeout_s: float) -> Deadline:
        return cls(
            started, base_budget_s(node_timeout_s), grace_s(node_timeout_s), False, node_timeout_s
        )

    @classmethod
    def fixed_at(cls, started: float, seconds: float) -> Deadline:
        return cls(started, seconds, fixed=True)

    def widen(self, node_timeout_s: float) -> None:
        """A cluster with a longer node timeout joined the test: its budget holds."""
        if not self.fixed and node_timeout_s > self.node_timeout_s:
            self.node_timeout_s = node_timeout_s
            self.base_s = max(self.base_s, base_budget_s(node_timeout_s))
            self.grace_s = max(self.grace_s, grace_s(node_timeout_s))

    def extend(self, now: float, timeout: float) -> None:
        """A wait of ``timeout`` s began at ``now``: the deadline lies past its end."""
        if not self.fixed:
            self.extended_to = max(self.extended_to, now + timeout + self.grace_s)

    @property
    def end(self) -> float:
        return max(self.started + self.base_s, self.extended_to)

    def describe(self) -> str:
        total = self.end - self.started
        if self.fixed:
            return f"{total:.1f} s (fixed)"
        how = f"base {self.base_s:.1f} s"
        if self.extended_to > self.started + self.base_s:
            how = f"the test's last wait plus {self.grace_s:.1f} s grace"
        nt = f", node timeout {self.node_timeout_s * 1000:.0f} ms" if self.node_timeout_s else ""
        return f"{total:.1f} s ({how}{nt})"


def allow(seconds: float) -> None:
    """Say that the caller blocks on purpose up to ``seconds`` from now (a fault held for
    its duration): the test's deadline will not fall inside it."""
    wait.announce(seconds)


class Watchdog:
    """Interrupts the thread that started it once its :class:`Deadline` passes.

    ``states`` is called on the watchdog's thread when it fires and says what the
    test's nodes look like; ``node_timeout_s``, when given, is asked again while the
    phase runs (a cluster started mid-test widens the budget). Start and stop it on the
    main thread (a signal handler can only be set there); elsewhere it does nothing.
    """

    def __init__(
        self,
        deadline: Deadline,
        what: str,
        states: Callable[[], str],
        node_timeout_s: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deadline = deadline
        self.what = what
        self._states = states
        self._node_timeout_s = node_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False
        self.message: str | None = None  # set when it fired
        self._thread: threading.Thread | None = None
        self._target = 0
        self._old_handler: Callable[[int, FrameType | None], object] | int | None = None
        self._old_hook: Callable[[float], None] | None = None

    @property
    def armed(self) -> bool:
        return self._thread is not None

    def start(self) -> Watchdog:
        if threading.current_thread() is not threading.main_thread():
            return self  # no signal handler off the main thread: unarmed
        self._target = threading.get_ident()
        self._old_handler = signal.signal(signal.SIGALRM, self._interrupt)
        self._old_hook, wait.on_wait = wait.on_wait, self._on_wait
        self._thread = threading.Thread(target=self._run, name="harness-deadline", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Disarm. If the deadline passed just now, the interruption may land here: it is
        raised once the watchdog is disarmed (the phase did run past its deadline)."""
        late: DeadlineExceeded | None = None
        while True:
            try:
                self._stopped = True  # from here on a pending signal is ignored
                break
            except DeadlineExceeded as exc:
                late = exc
        with self._lock:  # the thread sends nothing once it sees _stopped
            self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            wait.on_wait = self._old_hook
            signal.signal(signal.SIGALRM, self._old_handler or signal.SIG_DFL)
        if late is not None:
            raise late

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_wait(self, timeout: float) -> None:
        with self._lock:
            if self.message is None:
                self.deadline.extend(self._clock(), timeout)
        self._wake.set()  # the thread recomputes how long to sleep

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                if self._node_timeout_s is not None:
                    with contextlib.suppress(Exception):  # a half-built cluster: next time
                        self.deadline.widen(self._node_timeout_s())
                left = self.deadline.end - self._clock()
                self._wake.clear()
            if left <= 0:
                break
            self._wake.wait(min(left, 1.0))
        elapsed = self._clock() - self.deadline.started
        try:
            states = self._states()
        except Exception as exc:  # the interruption matters more than the report
            states = f"(node states unavailable: {type(exc).__name__}: {exc})"
        message = (
            f"{self.what} ran past its deadline of {self.deadline.describe()}: "
            f"still running after {elapsed:.1f} s; interrupted. Node states:\n{states}"
        )
        # The test may swallow the interruption and block again: repeat until it stops.
        while True:
            with self._lock:
                if self._stopped:
                    return
                self.message = message
                signal.pthread_kill(self._target, signal.SIGALRM)
                self._wake.clear()
            self._wake.wait(max(self.deadline.grace_s, REPEAT_S))

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True  # the report shows where the test was blocked, not this
        if self._stopped or self.message is None:
            return  # a late signal of a phase that has ended
        raise DeadlineExceeded(self.message)


def node_states(clusters: Iterable[Cluster]) -> str:
    """One paragraph per node: process state, INFO (or why it did not answer), last log
    lines. Bounded: the nodes are asked at once (:mod:`harness.fanout`), and one that
    does not answer costs :data:`INFO_TIMEOUT_S`."""
    out: list[str] = []
    for ci, c in enumerate(clusters):
        owned = c.backend.owns_cluster  # someone else's servers: no process, no log here
        for n, info in zip(c.nodes, fanout.each(_info, c.nodes), strict=True):
            head = f"cluster {ci} {n.name} {n.addr} (harness state {n.state})"
            lines = [head]
            if owned:
                lines.append(f"  process: {_annotate(n.process_state())}")
            lines.append(f"  INFO: {info}")
            if owned:
                lines += [f"  log| {ln[:200]}" for ln in last_lines(n.log_text(4000), LOG_LINES)]
            out.append("\n".join(lines))
    return "\n".join(out) or "(no cluster of the test is up)"


def last_lines(text: str, count: int) -> Sequence[str]:
    """The last ``count`` non-empty lines of ``text``, a log tail that may begin mid-line
    (that first line is dropped when there are more than enough)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-count:] if len(lines) <= count else lines[1:][-count:]


def _annotate(process: str) -> str:
    """``... state T (wchan ...)`` gets what T means: ``state T (stopped)``."""
    m = re.search(r"\bstate (\S)\b", process)
    if m is None or m.group(1) not in STATES:
        return process
    return process[: m.end()] + f" [{STATES[m.group(1)]}]" + process[m.end() :]


def _info(node: Node) -> str:
    try:
        reply = node.call("INFO", timeout=INFO_TIMEOUT_S)
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"no answer within {INFO_TIMEOUT_S:g} s ({type(exc).__name__}: {exc})"
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    info = parse_info(text)
    shown = [f"{k}={info[k]}" for k in INFO_FIELDS if k in info]
    return " ".join(shown) or "answered (no fields)"
