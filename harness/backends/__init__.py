"""Backends decide where nodes run (local processes now; containers later).

A backend hands the :class:`~harness.cluster.Cluster` a list of :class:`Node` objects;
everything above that (formation, readiness, faults, checks) is backend-independent.
"""

from __future__ import annotations

from harness import impl as impls
from harness.backends.base import Backend, Node, NodeConfig
from harness.errors import UsageError
from harness.impl import Implementation
from harness.security import PLAIN, Security

AVAILABLE = ("local", "docker", "external")


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
    if name == "external":
        from harness.backends.external import ExternalBackend

        return ExternalBackend
    raise UsageError(f"--backend {name}: unknown backend; choose one of: {', '.join(AVAILABLE)}")


def resolve_implementation(
    name: str | None,
    binary: str | None,
    image: str | None,
    backend: str,
    nodes: str | None = None,
    security: Security = PLAIN,
) -> Implementation:
    """``--impl`` / ``--impl-binary`` / ``--image`` to the implementation under test; on
    an external cluster (``--nodes``, reached with ``security``), what its nodes say they
    run."""
    if backend == "external" or nodes:
        from harness.backends.external import check_options, preflight

        named = check_options(backend, nodes)
        if binary or image:
            raise UsageError(
                f"{'--impl-binary' if binary else '--image'} does not apply to --backend "
                "external: the cluster runs its own servers (--impl NAME may name their profile)"
            )
        return preflight(named, name, security)
    if image is None:
        return impls.resolve(name, binary)
    if backend != "docker":
        raise UsageError(f"--image {image} needs --backend docker")
    if binary:
        raise UsageError("give --image or --impl-binary, not both: the image holds the server")
    from harness.images import identify_image

    return identify_image(image, name)


__all__ = ["AVAILABLE", "Backend", "Node", "NodeConfig", "get_backend", "resolve_implementation"]
