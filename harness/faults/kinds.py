"""Every fault kind, declared once: its name on the timeline, what heals it, whether it
opens a fault window, and whether asynchronous replication may lose writes acknowledged
just before it.

The checkers read windows from these declarations (:func:`closes`, :func:`opens_window`);
the fault modules of this package record their events under these names. Adding a fault
kind is one :func:`declare` next to the code that injects it. Pure data: no I/O, no
imports of backends, so checkers can use it on a stored history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: node name of cluster-wide events (``partition`` / ``heal``): a cluster-wide heal ends
#: matching windows on every node
CLUSTER = "cluster"


@dataclass(frozen=True)
class FaultKind:
    """``name`` is the action recorded when the fault is injected; ``healed_by`` the
    actions that end it (on the same node, or cluster-wide); ``window``: the fault opens a
    window in which losses are expected and classified; ``replication_grace``: a write
    acknowledged shortly before it may not have reached a replica yet (the node stops
    streaming), so the window opens that much earlier when a checker asks for a grace."""

    name: str
    healed_by: frozenset[str]
    window: bool = True
    replication_grace: bool = False
    doc: str = ""


_KINDS: dict[str, FaultKind] = {}


def declare(
    name: str,
    healed_by: Iterable[str],
    *,
    window: bool = True,
    replication_grace: bool = False,
    doc: str = "",
) -> FaultKind:
    """Register a fault kind (once per name: a second declaration is a programming error)."""
    if name in _KINDS:
        raise ValueError(f"fault kind {name!r} is declared twice")
    kind = FaultKind(name, frozenset(healed_by), window, replication_grace, doc)
    _KINDS[name] = kind
    return kind


def get(name: str) -> FaultKind | None:
    return _KINDS.get(name)


def all_kinds() -> dict[str, FaultKind]:
    """Every declared kind by name (a copy)."""
    return dict(_KINDS)


def opens_window(action: str) -> bool:
    kind = _KINDS.get(action)
    return kind is not None and kind.window


def closes(action: str) -> frozenset[str]:
    """The injected kinds that an event with this action ends."""
    return frozenset(k.name for k in _KINDS.values() if action in k.healed_by)


def heal_actions() -> frozenset[str]:
    return frozenset(a for k in _KINDS.values() for a in k.healed_by)


def healed_name(name: str) -> str:
    """The heal action of a fault that is undone as a whole (``latency`` ->
    ``latency-healed``)."""
    return f"{name}-healed"
