"""Faults: what breaks a cluster, one module per family, each fault kind declared once.

- :mod:`~harness.faults.process`: kill, pause/resume, stop/start, restart, crash-restart;
- :mod:`~harness.faults.network`: isolate, one-way drops, partitions (backends that
  :class:`~harness.backends.base.CutsLinks`);
- :mod:`~harness.faults.links`: Toxiproxy toxics on proxied clusters.

Each module declares its kinds (:func:`harness.faults.kinds.declare`: name, what heals
it, whether it opens a window); checkers derive fault windows from those declarations.
Every fault is recorded on the cluster's timeline before it is applied (and taken back
if it could not be), heals after they took effect; faults that must be undone are also
context managers that undo them on exit, even on failure.
"""

from __future__ import annotations

from harness.faults import kinds
from harness.faults.base import Target
from harness.faults.links import LinkFaults
from harness.faults.network import NetworkFaults
from harness.faults.process import ProcessFaults


class Faults(ProcessFaults, NetworkFaults, LinkFaults):
    """Every fault on the nodes of one cluster; the same object on every backend."""

    def __init__(self, target: Target) -> None:
        super().__init__(target)  # each family sets up its own state

    def close(self) -> None:
        """Remove what the faults left in place (proxies); the backend removes the rest."""
        self.unwire()


__all__ = ["Faults", "Target", "kinds"]
