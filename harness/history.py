"""What clients did: every operation with its invocation and completion, and the faults on
the same monotonic clock.

An operation's outcome is ``ok`` (it happened), ``fail`` (it definitely did not: MOVED,
CLUSTERDOWN, CROSSSLOT, TRYAGAIN and other error replies) or ``info`` (unknown: a
timeout or a dropped connection, the write may or may not have been applied). Checkers
never treat ``info`` as ``fail``. Histories are written as JSON lines, one op per line,
with the events of the one timeline interleaved by time, into the run's report directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["ok", "fail", "info"]

#: error reply prefixes that mean "definitely not applied"
DEFINITE_ERRORS = (
    "MOVED",
    "ASK",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "TRYAGAIN",
    "READONLY",
    "LOADING",
    "MASTERDOWN",
    "NOREPLICAS",
    "ERR",
    "WRONGTYPE",
)


@dataclass(slots=True)
class Op:
    """One client operation. ``kind``: "add" (set workload: add ``value`` to the set at
    ``key``), "write" / "read" (register), "incr" (counter), "final-read"."""

    id: int
    client: int
    kind: str
    key: str
    slot: int
    value: Any
    invoke_ns: int
    complete_ns: int = 0
    outcome: Outcome = "info"
    node: str | None = None  # address that answered, when known
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": "op", **asdict(self)}


@dataclass(slots=True)
class Event:
    """A fault or lifecycle step on the same monotonic clock as the ops (``t_ns``), and
    the same instant on the wall clock (``wall_ns``) to line it up with server logs.
    ``action`` names a fault kind (:mod:`harness.faults.kinds`) or a mark such as
    ``promoted``, ``fail-flag`` or ``ready``; ``node`` is an address or ``cluster``."""

    t_ns: int
    action: str
    node: str
    detail: str = ""
    wall_ns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"type": "event", **asdict(self)}


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def write_jsonl(self, path: Path) -> Path:
        """Ops and events interleaved by time (ops by invocation)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        items: list[tuple[int, dict[str, Any]]] = [(o.invoke_ns, o.to_json()) for o in self.ops]
        items += [(e.t_ns, e.to_json()) for e in self.events]
        items.sort(key=lambda x: x[0])
        with path.open("w") as f:
            for _, obj in items:
                f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        return path

    @classmethod
    def read_jsonl(cls, path: Path) -> History:
        h = cls()
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            kind = obj.pop("type")
            if kind == "op":
                h.ops.append(Op(**obj))
            elif kind == "event":
                h.events.append(Event(**obj))
        return h


def classify_error(exc: BaseException) -> tuple[Outcome, str]:
    """Map a client exception to an outcome: error replies are definite failures,
    timeouts and connection problems are unknown."""
    import redis

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, redis.exceptions.ConnectionError) and "connecting to" in str(exc):
        return "fail", text  # never connected, so the command was never sent
    if isinstance(
        exc,
        redis.exceptions.TimeoutError | redis.exceptions.ConnectionError | OSError | TimeoutError,
    ):
        return "info", text
    if isinstance(
        exc,
        redis.exceptions.ResponseError | redis.exceptions.ClusterError | redis.exceptions.DataError,
    ):
        return "fail", text
    return "info", text
