"""Backends decide where nodes run (local processes now; containers later).

A backend hands the :class:`~harness.cluster.Cluster` a list of :class:`Node` objects;
everything above that (formation, readiness, faults, checks) is backend-independent.
"""

from __future__ import annotations

from harness.backends.base import Backend, Node, NodeConfig
from harness.errors import UsageError

AVAILABLE = ("local",)
PLANNED = ("docker",)


def get_backend(name: str) -> type[Backend]:
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend
    if name in PLANNED:
        raise UsageError(
            f"--backend {name}: not yet available in this version; use --backend local"
        )
    raise UsageError(f"--backend {name}: unknown backend; choose one of: {', '.join(AVAILABLE)}")


__all__ = ["AVAILABLE", "Backend", "Node", "NodeConfig", "get_backend"]
