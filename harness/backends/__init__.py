"""Backends decide where nodes run (local processes now; containers later).

A backend hands the :class:`~harness.cluster.Cluster` a list of :class:`Node` objects;
everything above that (formation, readiness, faults, checks) is backend-independent.
"""

from __future__ import annotations

from harness import impl as impls
from harness.backends.base import Backend, Node, NodeConfig
from harness.errors import UsageError
from harness.impl import Implementation

AVAILABLE = ("local", "docker")


def get_backend(name: str) -> type[Backend]:
    """The backend class for ``--backend NAME`` (imported lazily: docker is optional)."""
    if name == "local":
        from harness.backends.local import LocalBackend

        return LocalBackend
    if name == "docker":
        try:
            from harness.backends.docker import DockerBackend
        except ImportError as exc:
            raise UsageError(
                f"--backend docker needs the docker extras ({exc.name} is missing): "
                "pip install -e '.[docker]'"
            ) from None
        return DockerBackend
    raise UsageError(f"--backend {name}: unknown backend; choose one of: {', '.join(AVAILABLE)}")


def resolve_implementation(
    name: str | None, binary: str | None, image: str | None, backend: str
) -> Implementation:
    """``--impl`` / ``--impl-binary`` / ``--image`` to the implementation under test."""
    if image is None:
        return impls.resolve(name, binary)
    if backend != "docker":
        raise UsageError(f"--image {image} needs --backend docker")
    if binary:
        raise UsageError("give --image or --impl-binary, not both: the image holds the server")
    from harness.images import identify_image

    return identify_image(image, name)


__all__ = ["AVAILABLE", "Backend", "Node", "NodeConfig", "get_backend", "resolve_implementation"]
