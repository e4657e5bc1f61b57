"""Live progress of long work: what a test is doing now, for someone watching a run.

The library says where it is (:func:`phase`: cluster bring-up, a fault injected, a
failover seen, healing, the final read) and which workloads run (:func:`track`); whoever
shows progress subscribes (:func:`subscribe`; the pytest plugin, :mod:`harness.plugin.progress`)
and reads op counts when it wants them (:func:`snapshot`). Without a listener a phase costs
one check. Nothing here knows pytest, terminals or files.

:meth:`Cluster.record <harness.cluster.Cluster.record>` is the single hook for steps on
the timeline (:func:`step`): every fault, every heal and every mark a suite makes
(``fail-flag``, ``promoted``) already goes through it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from harness.faults import kinds


class _HasOps(Protocol):
    @property
    def ops(self) -> Sequence[object]: ...


@dataclass(frozen=True)
class Counts:
    """Operations completed so far, by outcome (Jepsen's ok / fail / info)."""

    ok: int = 0
    fail: int = 0
    info: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.info

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.ok + other.ok, self.fail + other.fail, self.info + other.info)

    def describe(self) -> str:
        return f"ops {self.total} (ok {self.ok}, fail {self.fail}, info {self.info})"


@dataclass
class _Tally:
    """Counts of one history, read incrementally (ops are only ever appended)."""

    history: _HasOps
    seen: int = 0
    counts: Counts = field(default_factory=Counts)

    def update(self) -> Counts:
        ops = self.history.ops
        new = ops[self.seen : len(ops)]
        ok = fail = info = 0
        for op in new:
            outcome = getattr(op, "outcome", "info")
            if getattr(op, "complete_ns", 1) == 0:
                break  # not complete yet (a history read mid-op): count it next time
            ok += outcome == "ok"
            fail += outcome == "fail"
            info += outcome == "info"
        self.seen += ok + fail + info
        self.counts += Counts(ok, fail, info)
        return self.counts


@dataclass(frozen=True)
class Update:
    """One thing to show: the test (its id, or None outside a test), its phase and when
    it began, the seed, op counts (None: no workload ran in this test yet)."""

    test: str | None
    phase: str
    seed: int | None = None
    counts: Counts | None = None
    since: float = 0.0  # time.time() the test began
    at: float = 0.0  # time.time() of this update
    #: "phase" (a new phase), "ops" (counts only), "begin" / "end" (a test's bounds)
    kind: str = "phase"


Listener = Callable[[Update], None]


class Hub:
    """The current test, its phase and its workloads; listeners get every change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._tallies: list[_Tally] = []
        self._last = Update(None, "")

    # -- listeners -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def _emit(self, update: Update) -> None:
        for listener in list(self._listeners):
            listener(update)

    # -- what the library says -------------------------------------------------------
    def begin(self, test: str | None, seed: int | None = None) -> None:
        """A test starts: its phases and counts start over."""
        now = time.time()
        with self._lock:
            self._tallies.clear()
            self._last = Update(test, "setup", seed, None, now, now, "begin")
            update = self._last
        self._emit(update)

    def end(self, outcome: str) -> None:
        with self._lock:
            self._last = replace(self._last, phase=outcome, kind="end", at=time.time())
            update = replace(self._last, counts=self._counts())
            self._tallies.clear()
            self._last = Update(None, "")  # between tests: nothing to show
        self._emit(update)

    def phase(self, text: str) -> None:
        if not self._listeners:
            return
        with self._lock:
            self._last = replace(self._last, phase=text, kind="phase", at=time.time())
            update = replace(self._last, counts=self._counts())
        self._emit(update)

    def track(self, history: _HasOps) -> None:
        """Count this history's ops in the current test (a workload that started)."""
        with self._lock:
            if not any(t.history is history for t in self._tallies):
                self._tallies.append(_Tally(history))

    def _counts(self) -> Counts | None:
        if not self._tallies:
            return None
        total = Counts()
        for t in self._tallies:
            total += t.update()
        return total

    def snapshot(self) -> Update:
        """Where things are now, with op counts read just now (``kind`` "ops")."""
        with self._lock:
            return replace(self._last, counts=self._counts(), kind="ops", at=time.time())


HUB = Hub()


def subscribe(listener: Listener) -> Callable[[], None]:
    return HUB.subscribe(listener)


def phase(text: str) -> None:
    """Say what the current test is doing now (``"load running: set, 4 clients"``)."""
    HUB.phase(text)


def track(history: _HasOps) -> None:
    HUB.track(history)


def snapshot() -> Update:
    return HUB.snapshot()


def step_text(action: str, node: str, detail: str = "", *, ahead: bool = False) -> str:
    """A timeline step as a phase: a fault being injected, an operation, a heal, or a mark."""
    what = f"{action} {node} {detail}".rstrip()
    if action == "ready":
        return f"cluster ready ({detail})" if detail else "cluster ready"
    if action in ("fail-flag", "promoted"):
        return f"failover: {what}"
    if kinds.get(action) is not None:
        return f"fault injected: {what}"
    if ahead:  # a cluster operation about to run (harness.ops, the CLI tool)
        return f"operation: {what}"
    if action in kinds.heal_actions():
        return f"healing: {what}"
    return what


def step(action: str, node: str, detail: str = "", *, ahead: bool = False) -> None:
    """The hook of :meth:`Cluster.record <harness.cluster.Cluster.record>`."""
    if HUB.listening:
        HUB.phase(step_text(action, node, detail, ahead=ahead))


# -- plain text: what a CI log shows -----------------------------------------------------
def elapsed(update: Update) -> str:
    s = max(0, int(update.at - update.since)) if update.since else 0
    return f"{s // 60}:{s % 60:02d}"


def plain_line(update: Update, worker: str | None = None) -> str:
    """One line, no cursor codes: ``17:48:22 [gw0] test_x 0:12 fault injected: kill ...
    | ops 812 (ok 790, fail 20, info 2) | seed 42``."""
    stamp = time.strftime("%H:%M:%S", time.localtime(update.at or time.time()))
    parts = [stamp]
    if worker:
        parts.append(f"[{worker}]")
    if update.test:
        parts.append(short_test(update.test))
    parts += [elapsed(update), update.phase]
    line = " ".join(parts)
    if update.counts is not None:
        line += f" | {update.counts.describe()}"
    if update.seed is not None:
        line += f" | seed {update.seed}"
    return line


def short_test(nodeid: str) -> str:
    """``suites/chaos/test_failover.py::test_kill`` -> ``test_failover.py::test_kill``."""
    path, sep, rest = nodeid.partition("::")
    return f"{path.rsplit('/', 1)[-1]}{sep}{rest}"


class RateLimit:
    """Phase changes always pass; a counts-only update at most every ``every_s`` seconds,
    and only when the counts moved (a CI log must not fill with identical lines)."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._last_at: dict[str | None, float] = {}
        self._last_counts: dict[str | None, Counts | None] = {}

    def allow(self, update: Update, key: str | None = None) -> bool:
        if update.kind == "ops":
            if update.counts is None or update.counts == self._last_counts.get(key):
                return False
            if update.at - self._last_at.get(key, 0.0) < self.every_s:
                return False
        self._last_at[key] = update.at
        self._last_counts[key] = update.counts
        return True
