"""What every fault module shares: the narrow view of a cluster that faults act on, and
the one way a fault is recorded.

Faults know nothing of formation, readiness or clients: they act on a :class:`Target`
(the cluster implements it) and record each step on its timeline, which also writes the
step into the nodes' own logs, so a server log reads next to the harness's timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

from harness.faults.kinds import FaultKind

if TYPE_CHECKING:
    from harness.backends.base import Backend, Node
    from harness.history import Event
    from harness.impl import Implementation


class Target(Protocol):
    """The part of a cluster faults need."""

    @property
    def nodes(self) -> list[Node]: ...

    @property
    def backend(self) -> Backend: ...

    @property
    def impl(self) -> Implementation: ...

    @property
    def events(self) -> list[Event]: ...

    def record(self, action: str, node: str, detail: str = "", *, ahead: bool = False) -> Event: ...


def as_nodes(nodes: Node | Iterable[Node]) -> list[Node]:
    from harness.backends.base import Node

    return [nodes] if isinstance(nodes, Node) else list(nodes)


def names(nodes: Sequence[Node]) -> str:
    return ",".join(n.addr for n in nodes)


class FaultGroup:
    """Base of the fault modules' classes: one cluster's timeline, and the rule that a
    fault which could not be applied does not appear on it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: nodes a fault keeps from answering for now although they run (the timeline
        #: does not wait on them to write its line into their logs)
        self.busy: set[Node] = set()

    def inject(
        self, kind: FaultKind, node: str, apply: Callable[[], None], detail: str = ""
    ) -> Event:
        """Record ``kind`` just before applying it (the node's own log gets the line
        while it still can, and the time is the moment before the fault), then apply; on
        failure the event is taken back."""
        ev = self.target.record(kind.name, node, detail, ahead=True)
        try:
            apply()
        except BaseException:
            self.target.events.remove(ev)
            raise
        return ev

    def healed(self, action: str, node: str, detail: str = "") -> Event:
        """Record a heal after it took effect (a restarted node gets the line too)."""
        return self.target.record(action, node, detail)

    @contextmanager
    def held(self, start: Callable[[], Event], stop: Callable[[], object]) -> Iterator[Event]:
        """``start`` for the duration of the block; ``stop`` always runs."""
        ev = start()
        try:
            yield ev
        finally:
            stop()
