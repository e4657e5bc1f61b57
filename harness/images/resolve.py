"""Which image runs an implementation on the docker backend: the one ``--image`` names
(its server identified by ``--version``), or one built from the implementation's binary."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import docker.errors

from harness.errors import HarnessError, UsageError
from harness.images.binary import image_for_binary, inspect_binary
from harness.images.docker import BIN_DIR, DOCKER_ERRORS, docker_client, image_version, reason
from harness.impl import Implementation, load_profiles, parse_version


def preflight(impl: Implementation) -> None:
    """Check Docker and the binary once, before any test runs, so a problem is one line
    rather than an error per test."""
    docker_client().close()
    if impl.image is None:
        inspect_binary(impl.binary, impl.profile.cli)


def resolve_image(client: Any, impl: Implementation) -> tuple[str, str]:
    """(image, server executable inside it) for ``impl``: its ``--image`` (identified by
    :func:`identify_image`), or one built from its binary and reused while unchanged."""
    if impl.image is not None:
        return impl.image, impl.binary
    ref = image_for_binary(impl.binary, impl.profile.cli)
    return ref, f"{BIN_DIR}/{Path(impl.binary).name}"


def identify_image(image: str, profile_name: str | None = None) -> Implementation:
    """The implementation inside ``image`` (``--image``): its servers' ``--version``."""
    with contextlib.closing(docker_client()) as client:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            raise UsageError(
                f"--image {image}: not found locally and there is no registry to pull from; "
                "build one with `python -m harness image build`"
            ) from None
        except DOCKER_ERRORS as exc:
            raise HarnessError(f"--image {image}: {reason(exc)}") from exc
        profiles = load_profiles()
        if profile_name is not None and profile_name not in profiles:
            raise UsageError(
                f"--impl {profile_name}: unknown implementation; known: {', '.join(sorted(profiles))}"
            )
        candidates = [profiles[profile_name]] if profile_name else list(profiles.values())
        names = dict.fromkeys(
            s.partition(":")[2] if ":" in s else s for p in candidates for s in p.binaries
        )
        seen = []
        for name in names:
            try:
                code, text = image_version(client, image, name)
            except HarnessError:
                continue
            m = text.split(" server v=")
            if code != 0 or len(m) != 2:
                continue
            flavor, version = m[0].lower(), parse_version(m[1])
            seen.append(f"{name}: {text[:60]}")
            for p in candidates:
                if p.matches(flavor, version):
                    return Implementation(p, name, flavor, version, text, image=image)
    what = f" for {profile_name}" if profile_name else ""
    found = "; ".join(seen) or "no redis-server/valkey-server that runs"
    raise UsageError(f"--image {image}: no server{what} in it matches a profile ({found})")
