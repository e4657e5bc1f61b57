"""Container images for the docker backend, built on this machine without any registry.

Nothing can be pulled here, so images are assembled from what the host already has:

- :func:`build_from_binary` (:mod:`~harness.images.binary`) packs one server binary, the
  shared libraries ``ldd`` lists and the dynamic loader into an otherwise empty root
  filesystem and ``docker import``\\ s it;
- :func:`build_trixie_image` (:mod:`~harness.images.trixie`) bootstraps a Debian trixie
  root filesystem from the apt mirror configured here, for servers newer than the host's.

Every image is checked by running ``--version`` in a container before it is returned
(:mod:`~harness.images.docker`); an image that fails the check is removed, and temporary
files go in every case (:mod:`~harness.images.workdir`). :mod:`~harness.images.resolve`
picks the image a run uses.
"""

from __future__ import annotations

from harness.images.binary import (
    PackagedBinary,
    build_from_binary,
    image_for_binary,
    inspect_binary,
)
from harness.images.docker import (
    BIN_DIR,
    CHECK_LABEL,
    CLI_LABEL,
    DATA_DIR,
    EXECUTABLE_LABEL,
    LABEL_PREFIX,
    PACKAGES_LABEL,
    REPOSITORY_PREFIX,
    SHA_LABEL,
    SUITE_LABEL,
    VERSION_LABEL,
    docker_client,
    image_version,
    reason,
)
from harness.images.resolve import identify_image, preflight, resolve_image
from harness.images.trixie import TRIXIE_PACKAGES, TRIXIE_TAG, build_trixie_image, debian_mirror

__all__ = [
    "BIN_DIR",
    "CHECK_LABEL",
    "CLI_LABEL",
    "DATA_DIR",
    "EXECUTABLE_LABEL",
    "LABEL_PREFIX",
    "PACKAGES_LABEL",
    "REPOSITORY_PREFIX",
    "SHA_LABEL",
    "SUITE_LABEL",
    "TRIXIE_PACKAGES",
    "TRIXIE_TAG",
    "VERSION_LABEL",
    "PackagedBinary",
    "build_from_binary",
    "build_trixie_image",
    "debian_mirror",
    "docker_client",
    "identify_image",
    "image_for_binary",
    "image_version",
    "inspect_binary",
    "preflight",
    "reason",
    "resolve_image",
]
